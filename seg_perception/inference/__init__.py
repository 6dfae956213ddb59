"""What serves a model: backends behind one interface (:mod:`.base`), the registry and the
``auto`` choice (:mod:`.registry`), the engine policy, and what serving knows of the files
``seg_perception.export`` makes (:mod:`.artifacts`). Nothing here makes artifacts."""

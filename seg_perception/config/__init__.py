"""Configuration: the names a configuration may choose from (:mod:`.choices`), the validated
records built from node parameters (:mod:`.records`), and the merge of defaults, parameter
files and ``-p`` overrides (:mod:`.overrides`)."""

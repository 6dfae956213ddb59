"""Entry points for people: the ``seg-perception`` command line (parser, thin commands, one
error boundary), offline replay of bags through the core, and the core benchmark."""

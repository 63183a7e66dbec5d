"""Unit tests of arborist_trainer (run: /usr/bin/python3 -m unittest discover -s tests -t .)."""

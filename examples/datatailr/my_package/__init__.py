"""Datatailr's ``my_package``: the entry points of its reference's examples."""

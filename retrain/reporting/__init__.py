"""Renderings for people: plain-text tables, markdown, HTML bodies. Pure: no I/O."""

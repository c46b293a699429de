"""What a folder URL answers: the JSON listing, the HTML index page and the ``sha256sum``
list, all built from the catalog's entries."""

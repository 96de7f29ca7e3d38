"""The rules: one module per rule (or a few closely related rules), each ending with its
``RULE`` or ``RULES`` declaration. ``hooks.registry`` finds them; nothing lists them by hand."""

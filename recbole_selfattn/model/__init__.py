"""The plugin's models, one per module: ``attrec``, ``mtaw``, ``mind``.

They are imported on demand by :func:`recbole_selfattn.get_model`."""

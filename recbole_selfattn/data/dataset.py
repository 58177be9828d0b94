"""Dataset classes for plugin models that need more than RecBole's
``SequentialDataset`` (looked up by name: ``<Model>Dataset``)."""

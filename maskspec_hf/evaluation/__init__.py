"""Using and judging trained models: the linear probe (`probe`), the HEAR API (`hear`), batch classification
(`classify`) and the metrics (`metrics`), on top of the shared encoder windowing (`embeddings`).

Nothing here trains: these modules import the loaders, the pipeline and the data layer below them, never `training`.
"""

"""The similarity core both services share: features, weighting, the model registry, exact top-N.

Pure functions over DataFrames and sparse matrices: no files, no store, no environment. The
generator builds every user's neighbours with it; the server will place a new profile in a
model's space with the same vocabularies and weighting.
"""

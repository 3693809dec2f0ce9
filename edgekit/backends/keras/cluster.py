"""Weight clustering with TF-MOT: each layer's weights share `clusters` centroids (linear init).

After pruning, clustering preserves the zeros (sparsity-preserving clustering), so the two combine.
The wrappers are stripped before the model moves on; the clusters stay in the weights, which is what
makes the exported file compress well (few distinct values per tensor).
"""

from __future__ import annotations

from edgekit.artifact import Artifact
from edgekit.backends.keras import train
from edgekit.backends.keras.compat import tfmot


def cluster(artifact: Artifact, config, ctx) -> Artifact:
    mot = tfmot()
    clustering = mot.clustering.keras
    options = {"number_of_clusters": config.clusters,
               "cluster_centroids_init": clustering.CentroidInitialization.LINEAR}
    preserve_sparsity = bool(artifact.pruned)
    if preserve_sparsity:
        options["preserve_sparsity"] = True
    wrapped = clustering.cluster_weights(train.clone(artifact.model), **options)
    train.compile_and_fit(wrapped, ctx.dataset, config.epochs, config.batch_size, config.learning_rate,
                          ctx.recipe.seed, ctx.progress.task, f"cluster ({config.clusters} centroids)")
    stripped = clustering.strip_clustering(wrapped)
    details = {"clusters": config.clusters, "centroid_init": "linear", "sparsity_preserved": preserve_sparsity}
    return artifact.evolve("cluster", model=stripped, clustered=config.clusters, details=details)

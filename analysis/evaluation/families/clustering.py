"""Short-text clustering: k-means with k = the number of labels, scored by V-measure."""
from ..clustering import PRESETS, Clustering
from ..family import Family, Option

FAMILY = Family(
    name="clustering", position=20, evaluator=Clustering,
    description="texts with labels; k-means with k = number of labels, V-measure x100",
    measure="V-measure x100", short_measure="V-measure x100",
    options=(Option("clustering", "--clustering", "kmeans", param="preset", choices=PRESETS,
                    help="k-means over --seeds seeds, or MTEB's MiniBatchKMeans protocol with each task's own "
                         "settings."),
             Option("seeds", "--seeds", 5, minimum=1, help="k-means runs per recipe and clustering task.")),
    mteb_keys={"v_measure": ("v_measure",)},
    libraries=("sklearn.cluster",),  # scikit-learn's OpenMP runtime
)

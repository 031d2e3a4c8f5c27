"""The compiler's graph passes: autodiff, explicit_padding and simplify map a graph to a new
graph (the pipeline runs them, with decompose and apply_optimizer, as its graph stages); fuse
is an analysis that maps a graph to a `Fusion` (the values kept in memory), which lowering
reads."""

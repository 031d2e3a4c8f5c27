"""IR -> IR passes of the compiler, each a function from a graph to a new graph."""

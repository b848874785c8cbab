"""Built-in syncd connectors, registered in the `syncd.connectors` entry-point group."""

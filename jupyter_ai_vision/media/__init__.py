"""One module per content type: raster images, SVG, Vega-Lite, Plotly, HTML, markdown images.

Heavy libraries (Pillow, vl-convert) are imported inside functions; renderers that execute
foreign content run in sandboxed worker processes."""

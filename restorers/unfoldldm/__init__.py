"""UnfoldLDM (arXiv 2511.18152) and its plug-and-play host ``dgunet-pnp``; see README.md here.

Nothing is imported at package import: the registry table imports ``restorer`` / ``dgunet`` lazily.
"""

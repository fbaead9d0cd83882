"""helixserve: train, store and serve machine-learning models for life-science data.

Layers (imports point down only): cli > serving / batch / explain, training > runtime > store >
inputs. See DESIGN.md in the project's shared folder and docs/ for the map.
"""

__version__ = "0.1.0"

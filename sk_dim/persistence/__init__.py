"""Save and load fitted transformers and pipelines without pickle.

``joblib.dump`` and ``pickle`` work, but loading a pickle runs whatever code
the file names: only load those from a source you trust. :func:`save` writes
a zip file instead. For a transformer it holds two entries:

- ``metadata.json``: the format version, the sk_dim version that wrote the
  file, the class name (one of the sk_dim transformers' classes), the constructor
  parameters, the fitted attributes (input shape, feature names, training
  history, the versions of sk_dim, torch and scikit-learn at fit, ...) as
  JSON;
- ``weights.safetensors``: the module's ``state_dict`` in the safetensors
  format (raw tensors and a JSON header; nothing in it can run code).

A fitted scikit-learn composite (``Pipeline``, ``ColumnTransformer``,
``FeatureUnion``, a search's ``best_estimator_``, ...) holding sk_dim
transformers is saved as ``composite.json`` (format and versions),
``estimator.skops`` (the composite in the skops format, each sk_dim
transformer replaced by a placeholder naming its entries) and, for each
transformer, ``steps/<i>/metadata.json`` and ``steps/<i>/weights.safetensors``.

:func:`load` refuses anything else: an entry, key or fitted attribute it does
not know, a class outside the allow-list, parameters the class rejects,
weights that do not fit the network the parameters describe (checked on
PyTorch's ``meta`` device, which allocates nothing, before the network is
built) or that are not finite, entries larger than their caps, files of
another format version than 2, and, in the skops part, any type outside
skops' trusted scikit-learn, numpy and built-in types and sk_dim's
placeholder. Every refusal is a ``ValueError`` raised before the file can
make ``load`` allocate much more than its own size. Parameters that are not
JSON (a user's ``torch.nn.Module`` encoder, callable views, a
``RandomState``) cannot be saved this way: use joblib for those.

The estimators do not import this package (as scikit-learn does not import
skops): it uses their public ``inference_state`` and ``load_inference_state``.
``codec`` holds the JSON encoding, ``archive`` the zip file, ``transformers``
one transformer's entries and every check of their content, ``composites``
the skops part, ``api`` the two entry points.
"""

from .api import load, save
from .archive import FORMAT, FORMAT_VERSION
from .codec import UnsafeToSaveError
from .composites import SavedTransformer

__all__ = ["FORMAT", "FORMAT_VERSION", "SavedTransformer", "UnsafeToSaveError", "load", "save"]

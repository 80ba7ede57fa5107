"""The built-in allowlist. Every entry says why it is safe to admit.

Class entries may be rebuilt from a manifest or by the restricted unpickler. Callable entries
are reconstructors that legacy pickles (Metaflow's default ``pickle`` encoding, ``torch.save``)
call; only the scanner and the restricted unpickler consult them.

The torch.nn list is explicit (generated from torch 2.13 and reviewed), not a wildcard: a
wildcard on a module tree would also admit its functions.
"""

from __future__ import annotations

from .model import Rule

__all__ = ["DEFAULT_RULES"]

_TORCH_NN_REASON = (
    "torch.nn layer: its state is tensors, submodules and plain config values, and "
    "Module.__setstate__ only updates __dict__"
)

_TORCH_NN_CLASSES = [
    "torch.nn.modules.activation.CELU",
    "torch.nn.modules.activation.ELU",
    "torch.nn.modules.activation.GELU",
    "torch.nn.modules.activation.GLU",
    "torch.nn.modules.activation.Hardshrink",
    "torch.nn.modules.activation.Hardsigmoid",
    "torch.nn.modules.activation.Hardswish",
    "torch.nn.modules.activation.Hardtanh",
    "torch.nn.modules.activation.LeakyReLU",
    "torch.nn.modules.activation.LogSigmoid",
    "torch.nn.modules.activation.LogSoftmax",
    "torch.nn.modules.activation.Mish",
    "torch.nn.modules.activation.MultiheadAttention",
    "torch.nn.modules.activation.PReLU",
    "torch.nn.modules.activation.RReLU",
    "torch.nn.modules.activation.ReLU",
    "torch.nn.modules.activation.ReLU6",
    "torch.nn.modules.activation.SELU",
    "torch.nn.modules.activation.SiLU",
    "torch.nn.modules.activation.Sigmoid",
    "torch.nn.modules.activation.Softmax",
    "torch.nn.modules.activation.Softmax2d",
    "torch.nn.modules.activation.Softmin",
    "torch.nn.modules.activation.Softplus",
    "torch.nn.modules.activation.Softshrink",
    "torch.nn.modules.activation.Softsign",
    "torch.nn.modules.activation.Tanh",
    "torch.nn.modules.activation.Tanhshrink",
    "torch.nn.modules.activation.Threshold",
    "torch.nn.modules.adaptive.AdaptiveLogSoftmaxWithLoss",
    "torch.nn.modules.batchnorm.BatchNorm1d",
    "torch.nn.modules.batchnorm.BatchNorm2d",
    "torch.nn.modules.batchnorm.BatchNorm3d",
    "torch.nn.modules.batchnorm.LazyBatchNorm1d",
    "torch.nn.modules.batchnorm.LazyBatchNorm2d",
    "torch.nn.modules.batchnorm.LazyBatchNorm3d",
    "torch.nn.modules.batchnorm.SyncBatchNorm",
    "torch.nn.modules.channelshuffle.ChannelShuffle",
    "torch.nn.modules.container.Container",
    "torch.nn.modules.container.ModuleDict",
    "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.container.ParameterDict",
    "torch.nn.modules.container.ParameterList",
    "torch.nn.modules.container.Sequential",
    "torch.nn.modules.conv.Conv1d",
    "torch.nn.modules.conv.Conv2d",
    "torch.nn.modules.conv.Conv3d",
    "torch.nn.modules.conv.ConvTranspose1d",
    "torch.nn.modules.conv.ConvTranspose2d",
    "torch.nn.modules.conv.ConvTranspose3d",
    "torch.nn.modules.conv.LazyConv1d",
    "torch.nn.modules.conv.LazyConv2d",
    "torch.nn.modules.conv.LazyConv3d",
    "torch.nn.modules.conv.LazyConvTranspose1d",
    "torch.nn.modules.conv.LazyConvTranspose2d",
    "torch.nn.modules.conv.LazyConvTranspose3d",
    "torch.nn.modules.distance.CosineSimilarity",
    "torch.nn.modules.distance.PairwiseDistance",
    "torch.nn.modules.dropout.AlphaDropout",
    "torch.nn.modules.dropout.Dropout",
    "torch.nn.modules.dropout.Dropout1d",
    "torch.nn.modules.dropout.Dropout2d",
    "torch.nn.modules.dropout.Dropout3d",
    "torch.nn.modules.dropout.FeatureAlphaDropout",
    "torch.nn.modules.flatten.Flatten",
    "torch.nn.modules.flatten.Unflatten",
    "torch.nn.modules.fold.Fold",
    "torch.nn.modules.fold.Unfold",
    "torch.nn.modules.instancenorm.InstanceNorm1d",
    "torch.nn.modules.instancenorm.InstanceNorm2d",
    "torch.nn.modules.instancenorm.InstanceNorm3d",
    "torch.nn.modules.instancenorm.LazyInstanceNorm1d",
    "torch.nn.modules.instancenorm.LazyInstanceNorm2d",
    "torch.nn.modules.instancenorm.LazyInstanceNorm3d",
    "torch.nn.modules.linear.Bilinear",
    "torch.nn.modules.linear.Identity",
    "torch.nn.modules.linear.LazyLinear",
    "torch.nn.modules.linear.Linear",
    "torch.nn.modules.linear.NonDynamicallyQuantizableLinear",
    "torch.nn.modules.loss.BCELoss",
    "torch.nn.modules.loss.BCEWithLogitsLoss",
    "torch.nn.modules.loss.CTCLoss",
    "torch.nn.modules.loss.CosineEmbeddingLoss",
    "torch.nn.modules.loss.CrossEntropyLoss",
    "torch.nn.modules.loss.GaussianNLLLoss",
    "torch.nn.modules.loss.HingeEmbeddingLoss",
    "torch.nn.modules.loss.HuberLoss",
    "torch.nn.modules.loss.KLDivLoss",
    "torch.nn.modules.loss.L1Loss",
    "torch.nn.modules.loss.LinearCrossEntropyLoss",
    "torch.nn.modules.loss.MSELoss",
    "torch.nn.modules.loss.MarginRankingLoss",
    "torch.nn.modules.loss.MultiLabelMarginLoss",
    "torch.nn.modules.loss.MultiLabelSoftMarginLoss",
    "torch.nn.modules.loss.MultiMarginLoss",
    "torch.nn.modules.loss.NLLLoss",
    "torch.nn.modules.loss.NLLLoss2d",
    "torch.nn.modules.loss.PoissonNLLLoss",
    "torch.nn.modules.loss.SmoothL1Loss",
    "torch.nn.modules.loss.SoftMarginLoss",
    "torch.nn.modules.loss.TripletMarginLoss",
    "torch.nn.modules.loss.TripletMarginWithDistanceLoss",
    "torch.nn.modules.module.Module",
    "torch.nn.modules.normalization.CrossMapLRN2d",
    "torch.nn.modules.normalization.GroupNorm",
    "torch.nn.modules.normalization.LayerNorm",
    "torch.nn.modules.normalization.LocalResponseNorm",
    "torch.nn.modules.normalization.RMSNorm",
    "torch.nn.modules.padding.CircularPad1d",
    "torch.nn.modules.padding.CircularPad2d",
    "torch.nn.modules.padding.CircularPad3d",
    "torch.nn.modules.padding.ConstantPad1d",
    "torch.nn.modules.padding.ConstantPad2d",
    "torch.nn.modules.padding.ConstantPad3d",
    "torch.nn.modules.padding.ReflectionPad1d",
    "torch.nn.modules.padding.ReflectionPad2d",
    "torch.nn.modules.padding.ReflectionPad3d",
    "torch.nn.modules.padding.ReplicationPad1d",
    "torch.nn.modules.padding.ReplicationPad2d",
    "torch.nn.modules.padding.ReplicationPad3d",
    "torch.nn.modules.padding.ZeroPad1d",
    "torch.nn.modules.padding.ZeroPad2d",
    "torch.nn.modules.padding.ZeroPad3d",
    "torch.nn.modules.pixelshuffle.PixelShuffle",
    "torch.nn.modules.pixelshuffle.PixelUnshuffle",
    "torch.nn.modules.pooling.AdaptiveAvgPool1d",
    "torch.nn.modules.pooling.AdaptiveAvgPool2d",
    "torch.nn.modules.pooling.AdaptiveAvgPool3d",
    "torch.nn.modules.pooling.AdaptiveMaxPool1d",
    "torch.nn.modules.pooling.AdaptiveMaxPool2d",
    "torch.nn.modules.pooling.AdaptiveMaxPool3d",
    "torch.nn.modules.pooling.AvgPool1d",
    "torch.nn.modules.pooling.AvgPool2d",
    "torch.nn.modules.pooling.AvgPool3d",
    "torch.nn.modules.pooling.FractionalMaxPool2d",
    "torch.nn.modules.pooling.FractionalMaxPool3d",
    "torch.nn.modules.pooling.LPPool1d",
    "torch.nn.modules.pooling.LPPool2d",
    "torch.nn.modules.pooling.LPPool3d",
    "torch.nn.modules.pooling.MaxPool1d",
    "torch.nn.modules.pooling.MaxPool2d",
    "torch.nn.modules.pooling.MaxPool3d",
    "torch.nn.modules.pooling.MaxUnpool1d",
    "torch.nn.modules.pooling.MaxUnpool2d",
    "torch.nn.modules.pooling.MaxUnpool3d",
    "torch.nn.modules.rnn.GRU",
    "torch.nn.modules.rnn.GRUCell",
    "torch.nn.modules.rnn.LSTM",
    "torch.nn.modules.rnn.LSTMCell",
    "torch.nn.modules.rnn.RNN",
    "torch.nn.modules.rnn.RNNBase",
    "torch.nn.modules.rnn.RNNCell",
    "torch.nn.modules.rnn.RNNCellBase",
    "torch.nn.modules.sparse.Embedding",
    "torch.nn.modules.sparse.EmbeddingBag",
    "torch.nn.modules.transformer.Transformer",
    "torch.nn.modules.transformer.TransformerDecoder",
    "torch.nn.modules.transformer.TransformerDecoderLayer",
    "torch.nn.modules.transformer.TransformerEncoder",
    "torch.nn.modules.transformer.TransformerEncoderLayer",
    "torch.nn.modules.upsampling.Upsample",
    "torch.nn.modules.upsampling.UpsamplingBilinear2d",
    "torch.nn.modules.upsampling.UpsamplingNearest2d",
]

#: The minimal set a pickled DataFrame/Series with numeric, bool, object and string columns
#: needs (pandas 3: checked by tests/unpickle). Datetime, categorical, period and interval
#: columns need more entries; add them to your own policy after review.
_PANDAS_CLASSES: dict[str, str] = {
    "pandas.DataFrame": "rebuilt by __new__ + __setstate__ from its block manager and flags",
    "pandas.Series": "rebuilt by __new__ + __setstate__ from its block manager and name",
    "pandas.core.internals.managers.BlockManager": (
        "holds axes and blocks of already-loaded arrays; __setstate__ only re-wraps them"
    ),
    "pandas.core.internals.managers.SingleBlockManager": "BlockManager with one block (Series)",
    "pandas.Index": "index class handed to _new_Index, which builds it from loaded data",
    "pandas.RangeIndex": "start/stop/step integers, evaluated lazily",
    "pandas.StringDtype": "string dtype: a storage name ('python'/'pyarrow') and an NA value",
    "pandas.arrays.StringArray": "numpy object array of str, restored by the NDArrayBacked unpickler",
}

#: What pickled DataFrames with datetime, timezone-aware, timedelta and categorical columns
#: add (pandas 3; checked by tests/scan). Same risk profile as the entries above: each is
#: rebuilt from already-loaded arrays and plain values.
_PANDAS_TIME_AND_CATEGORICAL: dict[str, str] = {
    "pandas.Categorical": "codes array plus a CategoricalDtype; __setstate__ stores them",
    "pandas.CategoricalDtype": "categories Index and an ordered flag",
    "pandas.DatetimeTZDtype": "a unit string and a tzinfo (datetime.timezone here)",
    "pandas.arrays.DatetimeArray": "datetime64 ndarray plus dtype, via the NDArrayBacked unpickler",
    "pandas.arrays.TimedeltaArray": "timedelta64 ndarray plus dtype, via the NDArrayBacked unpickler",
    "datetime.timedelta": "days, seconds and microseconds as integers",
    "datetime.timezone": "a fixed UTC offset (a timedelta) and an optional name",
}

#: scikit-learn estimators of the benign corpus (sklearn 1.9). Plausible risk: estimators
#: run their own __setstate__ (version checks, attribute restore), and Tree.__setstate__
#: takes raw node arrays that predict() indexes; sklearn validates their dtype and shape
#: since 1.3, but a crafted node array is still the most exposed part. Review before
#: loading estimators from untrusted sources even when the scan is clean.
_SKLEARN_CLASSES: dict[str, str] = {
    "sklearn.linear_model._logistic.LogisticRegression": (
        "coefficient arrays and hyper-parameters; BaseEstimator.__setstate__ restores __dict__"
    ),
    "sklearn.preprocessing._data.StandardScaler": "mean/scale arrays and flags in __dict__",
    "sklearn.pipeline.Pipeline": "a list of (name, estimator) pairs; each estimator is graded",
    "sklearn.ensemble._forest.RandomForestClassifier": (
        "hyper-parameters and a list of fitted trees; each tree is graded"
    ),
    "sklearn.tree._classes.DecisionTreeClassifier": "hyper-parameters plus a Tree",
    "sklearn.tree._tree.Tree": (
        "Cython Tree(n_features, n_classes, n_outputs) + __setstate__ with node and value "
        "arrays (validated by sklearn >= 1.3; see the note above)"
    ),
}

_CLASSES: dict[str, str] = {
    **{name: _TORCH_NN_REASON for name in _TORCH_NN_CLASSES},
    **_PANDAS_CLASSES,
    **_PANDAS_TIME_AND_CATEGORICAL,
    **_SKLEARN_CLASSES,
    "joblib.numpy_pickle.NumpyArrayWrapper": (
        "joblib's placeholder for an array stored inline after it (shape, dtype, order); "
        "safeart's scanner skips or scans that inline data, never joblib.load"
    ),
    "__main__.ForeachFrame": (
        "Metaflow's _foreach_stack entries: a NamedTuple (step, var, num_splits, index, value) "
        "that metaflow.tuple_util installs in __main__ of every Metaflow process"
    ),
    "metaflow.exception.MetaflowExceptionWrapper": (
        "what @catch stores: MetaflowExceptionWrapper(None) (its __init__ does nothing for "
        "None) plus a __dict__ of exception text, type name and stack trace strings"
    ),
}

_CALLABLES: dict[str, str] = {
    "collections.OrderedDict": "builds an ordered dict from key/value pairs",
    "builtins.set": "builds a set from an iterable of already-loaded values",
    "builtins.frozenset": "builds a frozenset from already-loaded values",
    "builtins.complex": "builds a complex number from two floats",
    "builtins.slice": "builds a slice from plain values",
    "builtins.bytearray": "builds a bytearray from bytes",
    "builtins.bytes": "protocol 0-2 write empty bytes as bytes(); same reach as bytearray",
    "builtins.range": "builds a range from integers",
    "_codecs.encode": "protocol 0-2 bytes: str.encode(text, 'latin1')",
    "torch._utils._rebuild_tensor_v2": "views a loaded storage as a tensor (shape, stride, offset)",
    "torch._utils._rebuild_tensor_v3": "views a loaded storage as a tensor, with dtype",
    "torch._utils._rebuild_parameter": "wraps a loaded tensor in nn.Parameter",
    "torch._utils._rebuild_parameter_with_state": "wraps a loaded tensor in nn.Parameter, sets plain state",
    "torch.storage._load_from_bytes": (
        "torch storage bytes: safeart scans the inner legacy stream and the restricted "
        "unpickler routes it to a restricted inner load, never torch.load"
    ),
    "torch.Size": "a tuple of ints",
    "torch.device": "a device name",
    "numpy.core.multiarray._reconstruct": "empty ndarray of a given class and dtype",
    "numpy._core.multiarray._reconstruct": "empty ndarray of a given class and dtype",
    "numpy.core.multiarray.scalar": "numpy scalar from dtype and raw bytes",
    "numpy._core.multiarray.scalar": "numpy scalar from dtype and raw bytes",
    "numpy.ndarray": "array class; state is shape, dtype and raw bytes",
    "numpy.dtype": "dtype descriptor from a type code",
    "numpy._core.numeric._frombuffer": (
        "protocol 5 arrays: numpy.frombuffer(bytes, dtype, shape, order) over a loaded buffer"
    ),
    "numpy.core.numeric._frombuffer": "numpy 1.x name of numpy._core.numeric._frombuffer",
    "pandas._libs.internals._unpickle_block": "wraps a loaded array in a Block at given positions",
    "pandas.core.indexes.base._new_Index": (
        "cls.__new__(cls, **d): cls must be a class the policy already admitted"
    ),
    "pandas._libs.arrays.__pyx_unpickle_NDArrayBacked": (
        "Cython reconstructor: NDArrayBacked.__new__(cls) (cls must subclass NDArrayBacked) "
        "plus its ndarray and dtype state"
    ),
}

DEFAULT_RULES: tuple[Rule, ...] = tuple(
    [Rule(name, reason, "class") for name, reason in _CLASSES.items()]
    + [Rule(name, reason, "callable") for name, reason in _CALLABLES.items()]
)

"""The operators a ``.pt2`` graph may call: pure tensor computation, as data.

Standard library only (the web server audits uploads without torch). Names are
``namespace.operator.overload`` as ``torch.ops`` spells them (``aten.conv2d.default``). The
lists were taken from torch's own schemas and are checked against them by
``tests/models/test_operators.py``, so a torch upgrade cannot widen them silently:

- ``PURE``: what the export recipe of ``models/checkpoints/EXPORT.md`` produces for every zoo network and
  for the usual layers (exports keep composite operators such as ``conv2d``, ``linear`` and
  ``batch_norm``), plus the core ATen operators (``torch.Tag.core``). Every one neither writes
  to an argument nor aliases one except through its declared result. Left out although core:
  ``empty.memory_format`` and ``empty_strided`` (they return uninitialised memory) and
  ``atan2.out`` / ``_native_batch_norm_legit.default`` (they write to arguments); ``einsum``
  (a free-form equation string); ``split``, ``chunk`` and ``unbind`` (results that alias).
- ``VIEWS``: the operators of ``PURE`` whose result may share memory with an argument, and
  ``SHARES_AN_INPUT`` those plus the composites that return an argument itself in some modes
  although their schema declares no alias (dropout when not training, ``type_as`` of the same
  dtype).
- ``IN_PLACE``: operators that overwrite ``self`` and return it (torchvision's ResNet exports
  ``relu_`` and ``add_``); the audit accepts them only on a tensor the graph itself computed,
  never on an input, a weight or a view of either.
- ``STRING_MODES``: the only string arguments, each an enumerated mode with its values.
- ``SYMBOLIC``: Python helpers torch.export uses for arithmetic on symbolic sizes.
- ``TRAINING_FLAGS``: flags that must be false (batch norm exported in training mode).

Anything else — files (``aten.from_file``), printing (``aten._print``), storage
(``aten.set_``), copies into an argument (``aten.copy_``), other namespaces, control flow — is
refused by name.
"""

PURE: frozenset[str] = frozenset(
    f"aten.{name}"
    for name in """
    _adaptive_avg_pool2d.default _adaptive_avg_pool2d_backward.default
    _adaptive_avg_pool3d.default _cdist_forward.default _embedding_bag.default
    _fft_c2r.default _fft_r2c.default _local_scalar_dense.default _log_softmax.default
    _native_batch_norm_legit.no_stats _native_batch_norm_legit_no_training.default
    _pdist_forward.default _softmax.default _to_copy.default abs.default acos.default
    acosh.default adaptive_avg_pool2d.default adaptive_max_pool2d.default add.Scalar
    add.Tensor addmm.default alias.default alpha_dropout.default amax.default amin.default
    any.default any.dim any.dims arange.default arange.start arange.start_step
    argmax.default argmin.default as_strided.default asin.default asinh.default atan.default
    atan2.default atanh.default avg_pool2d.default avg_pool2d_backward.default
    avg_pool3d.default batch_norm.default bernoulli.default bernoulli.p bitwise_and.Scalar
    bitwise_and.Tensor bitwise_not.default bitwise_or.Scalar bitwise_or.Tensor
    bitwise_xor.Scalar bitwise_xor.Tensor bmm.default cat.default ceil.default celu.default
    clamp.Tensor clamp.default clamp_max.default clamp_min.default clone.default
    col2im.default constant_pad_nd.default contiguous.default conv1d.default conv2d.default
    conv3d.default conv_transpose2d.input convolution.default convolution_backward.default
    copy.default cos.default cosh.default cumsum.default diagonal.default div.Scalar
    div.Scalar_mode div.Tensor div.Tensor_mode dropout.default elu.default embedding.default
    embedding_dense_backward.default eq.Scalar eq.Tensor erf.default exp.default
    expand.default expm1.default exponential.default feature_dropout.default fill.Scalar
    flatten.using_ints flip.default floor.default fmod.Scalar fmod.Tensor full.default
    full_like.default gather.default ge.Scalar ge.Tensor gelu.default
    grid_sampler_2d.default group_norm.default gt.Scalar gt.Tensor hardsigmoid.default
    hardswish.default hardtanh.default index.Tensor index_put.default index_select.default
    isinf.default isnan.default layer_norm.default le.Scalar le.Tensor leaky_relu.default
    linalg_vector_norm.default linear.default log.default log10.default log1p.default
    log2.default log_softmax.int logical_and.default logical_not.default logical_or.default
    logical_xor.default logsumexp.default lt.Scalar lt.Tensor masked_fill.Scalar
    masked_fill.Tensor masked_scatter.default matmul.default max.default max.dim
    max_pool2d.default max_pool2d_with_indices.default
    max_pool2d_with_indices_backward.default max_pool3d_with_indices.default maximum.default
    mean.default mean.dim min.default min.dim minimum.default mish.default mm.default
    mul.Scalar mul.Tensor native_dropout.default native_group_norm.default
    native_group_norm_backward.default native_layer_norm.default
    native_layer_norm_backward.default ne.Scalar ne.Tensor neg.default nonzero.default
    norm.ScalarOpt_dim normal.Tensor_Tensor normal.Tensor_float normal.float_Tensor
    ones.default ones_like.default pad.default permute.default pow.Scalar pow.Tensor_Scalar
    pow.Tensor_Tensor prelu.default prod.default prod.dim_int rand.default rand_like.default
    randint_like.default randn.default randn_like.default randperm.default
    reciprocal.default reflection_pad1d.default reflection_pad2d.default
    reflection_pad3d.default relu.default relu6.default remainder.Scalar remainder.Tensor
    repeat.default replication_pad2d.default replication_pad3d.default reshape.default
    roll.default round.default rsqrt.default rsub.Scalar scalar_tensor.default scatter.src
    scatter.value scatter_add.default scatter_reduce.two select.int select_scatter.default
    selu.default sigmoid.default sign.default silu.default sin.default sinh.default
    slice.Tensor slice_scatter.default softmax.int softplus.default sort.default
    sqrt.default square.default squeeze.dim squeeze.dims stack.default std.correction
    sub.Scalar sub.Tensor sum.default sum.dim_IntList sym_numel.default sym_size.int
    sym_storage_offset.default sym_stride.int t.default tan.default tanh.default to.device
    to.dtype to.dtype_layout topk.default transpose.int trunc.default type_as.default
    uniform.default unsqueeze.default upsample_bilinear2d.vec upsample_nearest2d.vec
    var.correction var.dim view.default where.self zeros.default zeros_like.default
""".split()
)

VIEWS: frozenset[str] = frozenset(
    f"aten.{name}"
    for name in """
    alias.default as_strided.default contiguous.default diagonal.default expand.default
    flatten.using_ints permute.default reshape.default select.int slice.Tensor squeeze.dim
    squeeze.dims t.default to.device to.dtype to.dtype_layout transpose.int
    unsqueeze.default view.default
""".split()
)

SHARES_AN_INPUT: frozenset[str] = VIEWS | frozenset(
    {
        "aten.dropout.default",
        "aten.feature_dropout.default",
        "aten.alpha_dropout.default",
        "aten.type_as.default",
    }
)

IN_PLACE: frozenset[str] = frozenset(
    f"aten.{name}"
    for name in """
    add_.Scalar add_.Tensor clamp_.default div_.Tensor dropout_.default elu_.default
    hardswish_.default hardtanh_.default leaky_relu_.default mul_.Scalar mul_.Tensor
    relu_.default sigmoid_.default silu_.default sub_.Tensor tanh_.default
""".split()
)

STRING_MODES: dict[tuple[str, str], frozenset[str]] = {
    ("aten.gelu.default", "approximate"): frozenset({"none", "tanh"}),
    ("aten.div.Tensor_mode", "rounding_mode"): frozenset({"trunc", "floor"}),
    ("aten.div.Scalar_mode", "rounding_mode"): frozenset({"trunc", "floor"}),
    ("aten.pad.default", "mode"): frozenset({"constant", "reflect", "replicate", "circular"}),
    ("aten.scatter_reduce.two", "reduce"): frozenset({"sum", "prod", "mean", "amax", "amin"}),
}

DEVICE_TYPES: frozenset[str] = frozenset({"cpu", "cuda"})

SYMBOLIC: frozenset[str] = frozenset(
    """
    _operator.getitem _operator.add _operator.sub _operator.mul _operator.truediv
    _operator.floordiv _operator.mod _operator.neg _operator.pos _operator.abs _operator.pow
    _operator.eq _operator.ne _operator.lt _operator.le _operator.gt _operator.ge
    _operator.and_ _operator.or_ _operator.not_
    torch.sym_max torch.sym_min torch.sym_float torch.sym_int torch.sym_not torch.sym_ite
    torch.sym_sqrt torch.sym_sum math.ceil math.floor math.trunc math.sqrt
    """.split()
)

TRAINING_FLAGS: frozenset[tuple[str, str]] = frozenset({("aten.batch_norm.default", "training")})
"""Arguments that must be false: batch norm in training mode overwrites its running statistics
(a weight) on every call, although its schema does not declare the write."""

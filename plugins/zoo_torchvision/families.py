"""Where to cut torchvision's classifiers: rules per architecture family, not a table per model.

A family says only what torchvision's module tree cannot: which containers hold the stages
(``expand``), whether the trunk ends in a head convolution that is no feature (``head_conv``),
whether its maps are channels-last (``channels_last``), and what the builder changes for
pretrained weights (:func:`pretrained_kwargs`, :func:`after_load`). Everything else is derived
from the network built for the weights and its eval-mode FX graph (:func:`cut`):

- head: the last module that maps to the classes (a Linear, or SqueezeNet's 1x1 Conv2d);
- embedding: the FX node feeding the head, walking back over dropout (the identity at eval),
  named by the module it ends; its dim is its flattened size, as zoo flattens it;
- stages: the expanded children, from input to output, that own parameters and run at eval,
  except normalisation layers (they train with the stage before them: a ResNet's ``bn1``, a
  ConvNeXt's final LayerNorm) and the head;
- features: the last trunk part before the adaptive pool at each output stride 4, 8, 16 and 32
  (recorded with that stride), among blocks, activations and pools: a bare Conv2d/Linear/norm output is rewritten in place
  by the activation after it (``ReLU(inplace=True)``) when both run in one graph.

Imports torch and torchvision: only the generator and the tests use it (``zoo list`` reads the
generated catalogue).
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
import torchvision
from torch import fx, nn
from torchvision.models.feature_extraction import NodePathTracer, _set_default_tracer_kwargs, create_feature_extractor

__all__ = ["Family", "Cut", "FAMILIES", "family_of", "pretrained_kwargs", "after_load", "build", "cut", "STRIDES"]

#: The output strides that get a feature point: the stride-4 to stride-32 maps detection and
#: segmentation heads read, as in timm's ``feature_info`` (stride 2 is left out).
STRIDES = (4, 8, 16, 32)

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.LayerNorm, nn.GroupNorm)
_BARE = (nn.Conv2d, nn.Linear, *_NORMS)  # layers whose output an in-place activation may rewrite


@dataclass(frozen=True)
class Family:
    """The few facts about one architecture family that its module tree does not say."""

    name: str  # the card's family, e.g. "resnet"
    pattern: str  # a regular expression over torchvision architecture names
    kind: str  # "cnn" or "transformer": a tag
    expand: tuple[str, ...] = ()  # containers whose children are the stages (others are stages whole)
    head_conv: bool = False  # the trunk ends in a 1x1 conv that widens for the head (timm's conv_head)
    channels_last: bool = False  # stage outputs are (N, H, W, C): zoo pools features as NCHW
    note: str = ""  # why a choice is not the obvious one; formatted with the cut's fields


_FLAT = ("features", "classifier")  # a Sequential trunk and a Sequential classifier

#: Every family of ``torchvision.models.list_models(module=torchvision.models)``; an architecture
#: none matches stops the generator (a new torchvision family needs a rule here first).
FAMILIES = (
    Family("resnet", r"resnet\d+$", "cnn"),
    Family("resnext", r"resnext\d+_\d+x\d+d$", "cnn"),
    Family("wide_resnet", r"wide_resnet\d+_\d+$", "cnn"),
    Family("regnet", r"regnet_[xy]_\w+$", "cnn", expand=("trunk_output",)),
    Family("efficientnet", r"efficientnet_b\d$", "cnn", expand=_FLAT, head_conv=True),
    Family("efficientnet_v2", r"efficientnet_v2_[sml]$", "cnn", expand=_FLAT, head_conv=True),
    Family("mobilenet_v2", r"mobilenet_v2$", "cnn", expand=_FLAT, head_conv=True),
    # The 960-channel conv ending `features` is a feature, as in timm's mobilenetv3 (whose head conv
    # is the Linear after the pool: torchvision's classifier.0).
    Family("mobilenet_v3", r"mobilenet_v3_(large|small)$", "cnn", expand=_FLAT,
           note="The embedding is the output of the pre-classifier Linear and its activation ({node}), "
                "taken before dropout; the head replaced is the final Linear {head}."),
    Family("mnasnet", r"mnasnet\d_\d+$", "cnn", expand=("layers", "classifier"), head_conv=True),
    Family("convnext", r"convnext_\w+$", "cnn", expand=_FLAT),
    Family("vgg", r"vgg\d+(_bn)?$", "cnn", expand=_FLAT,
           note="The embedding is the {dim}-d fc7 activation ({node}), taken before dropout; the head "
                "replaced is the final Linear {head}."),
    Family("alexnet", r"alexnet$", "cnn", expand=_FLAT,
           note="The embedding is the {dim}-d fc7 activation ({node}); the head replaced is the final "
                "Linear {head}."),
    Family("squeezenet", r"squeezenet1_[01]$", "cnn", expand=_FLAT,
           note="SqueezeNet has no global pool before its classifier (a 1x1 convolution to the classes, "
                "ReLU, then average pooling): the embedding is the last Fire module's map flattened "
                "({dim} values at this input size), and head='pretrained' does not apply; pooled "
                "earlier maps are in features."),
    Family("densenet", r"densenet\d+$", "cnn", expand=("features",)),
    Family("shufflenet_v2", r"shufflenet_v2_x\d_\d$", "cnn", head_conv=True),
    Family("googlenet", r"googlenet$", "cnn",
           note="torchvision builds the pretrained network with transform_input=True (it re-normalises "
                "the input inside the network) and without the auxiliary classifiers."),
    Family("inception", r"inception_v3$", "cnn",
           note="torchvision builds the pretrained network with transform_input=True (it re-normalises "
                "the input inside the network); the auxiliary classifier AuxLogits runs only in "
                "training mode and is no stage."),
    Family("vit", r"vit_[bhl]_\d+$", "transformer", expand=("encoder", "encoder.layers", "heads"),
           note="Embedding node {node!r} is the torch.fx name of the class-token slice x[:, 0] (fx names "
                "can change between torchvision versions: regenerate the catalogue). The parameters "
                "class_token and encoder.pos_embedding sit on modules that are not stages. Input size "
                "is fixed at {size}x{size}."),
    Family("swin_v2", r"swin_v2_[tsb]$", "transformer", expand=("features",), channels_last=True,
           note="Stage outputs are channels-last (N, H, W, C), so no features are listed."),
    Family("swin", r"swin_[tsb]$", "transformer", expand=("features",), channels_last=True,
           note="Stage outputs are channels-last (N, H, W, C), so no features are listed."),
    Family("maxvit", r"maxvit_t$", "transformer", expand=("blocks", "classifier"),
           note="The embedding is the output of the pre-logits Linear and Tanh ({node}); the head "
                "replaced is the final Linear {head}. Input size is fixed at {size}x{size}."),
)


@dataclass(frozen=True)
class Cut:
    """What a card says about where to cut a network: the registry entry's fields."""

    node: str  # the embedding's FX node
    dim: int  # its flattened size
    head: str  # the module a new head replaces
    stages: tuple[str, ...]  # module paths, input to output
    features: dict[str, int] = field(default_factory=dict)  # module path -> channels, input to output
    strides: dict[str, int] = field(default_factory=dict)  # module path -> its output stride


def family_of(arch: str) -> Family:
    """The family rule for a torchvision architecture name; an unknown one is an error, so a new
    family gets a rule before it gets cards."""
    for family in FAMILIES:
        if re.fullmatch(family.pattern, arch):
            return family
    raise LookupError(f"no family rule matches torchvision architecture {arch!r}: "
                      f"add one to zoo_torchvision.families.FAMILIES")


def _family_name(arch: str) -> str | None:
    """The family's name, or None for an architecture no rule covers (a loader may build any)."""
    try:
        return family_of(arch).name
    except LookupError:
        return None


def pretrained_kwargs(arch: str, weights: Any) -> dict[str, Any]:
    """The keyword arguments torchvision's builder passes the architecture for these weights
    (beyond ``num_classes``, the enum's 1000 categories here), so that a network built with
    ``weights=None`` and these loads the weights' file strictly and computes what the pretrained
    one does:

    - ViT: ``image_size`` from ``meta["min_size"]`` (the SWAG end-to-end weights are 384-518 px,
      with as many position embeddings);
    - MaxViT: ``input_size`` likewise;
    - GoogLeNet and Inception v3: ``transform_input=True`` (the input is re-normalised inside the
      network), ``aux_logits=True`` (the files hold the auxiliary heads) and ``init_weights=False``.
    """
    family = _family_name(arch)
    if family == "vit":
        return {"image_size": weights.meta["min_size"][0]}
    if family == "maxvit":
        return {"input_size": tuple(weights.meta["min_size"])}
    if family in ("googlenet", "inception"):
        return {"transform_input": True, "aux_logits": True, "init_weights": False}
    return {}


def after_load(arch: str, network: nn.Module) -> nn.Module:
    """What the builder does once the weights are in: GoogLeNet's drops its auxiliary heads (they
    are not pretrained, and its ``num_params`` leaves them out); Inception v3's keeps AuxLogits."""
    if _family_name(arch) == "googlenet":
        network.aux_logits = False
        network.aux1 = None
        network.aux2 = None
    return network


def build(arch: str, weights: Any) -> nn.Module:
    """The architecture as torchvision's builder makes it for ``weights``, without loading them, in
    eval mode (build it under ``torch.device("meta")`` for the structure alone). A loader builds
    with :func:`pretrained_kwargs`, loads, then calls :func:`after_load`."""
    network = torchvision.models.get_model(arch, weights=None, **pretrained_kwargs(arch, weights))
    return after_load(arch, network).eval()


# --------------------------------------------------------------------------- the cut


def cut(arch: str, network: nn.Module, size: int, classes: int) -> Cut:
    """The cut point, head, stages and features of ``network`` (built for one weight, in eval mode)
    at a ``size`` x ``size`` input, by the rules in this module's docstring."""
    family = family_of(arch)
    graph, names = _trace(network)
    live = set(names.values())
    head = _head(network, classes, live)
    node = _embedding_node(network, graph, names, head)
    parts = _parts(network, family.expand)
    stages = tuple(p for p in parts if _is_stage(network, p, head, live))
    trunk = _trunk(network, parts, head, node, live, graph, names)
    shapes = _shapes(network, [node, *trunk], size)
    strides = {} if family.channels_last else _features(trunk, shapes, size, family.head_conv)
    return Cut(node=node, dim=math.prod(shapes[node][1:]), head=head, stages=stages,
               features={path: int(shapes[path][1]) for path in strides}, strides=strides)


def _trace(network: nn.Module) -> tuple[fx.Graph, dict[fx.Node, str]]:
    """The eval-mode graph with torchvision's node names: the tracer and settings its
    ``get_graph_node_names`` and ``create_feature_extractor`` use, so the names are ones the
    adapter's extractor accepts."""
    tracer = NodePathTracer(**_set_default_tracer_kwargs(None))
    graph = tracer.trace(network.eval())
    return graph, dict(tracer.node_to_qualname)


def _within(path: str, ancestor: str) -> bool:
    """Is ``path`` the module ``ancestor`` or inside it?"""
    return path == ancestor or path.startswith(ancestor + ".")


def _runs(path: str, live: set[str]) -> bool:
    """Does module ``path`` take part in the eval-mode forward (GoogLeNet/Inception's auxiliary
    heads do not)?"""
    return any(_within(name, path) for name in live)


def _head(network: nn.Module, classes: int, live: set[str]) -> str:
    """The last module, in registration order, that maps to the classes and runs at eval."""
    heads = [name for name, m in network.named_modules()
             if ((isinstance(m, nn.Linear) and m.out_features == classes)
                 or (isinstance(m, nn.Conv2d) and m.out_channels == classes)) and _runs(name, live)]
    if not heads:
        raise LookupError(f"no Linear or Conv2d maps to the {classes} classes")
    return heads[-1]


def _embedding_node(network: nn.Module, graph: fx.Graph, names: dict[fx.Node, str], head: str) -> str:
    """The node feeding the head's call, walking back over dropout, named by the module it ends."""
    (call,) = [n for n in graph.nodes if n.op == "call_module" and n.target == head]
    node = call.all_input_nodes[0]
    while _is_dropout(network, node):
        node = node.all_input_nodes[0]
    return _module_name(node, graph, names)


def _is_dropout(network: nn.Module, node: fx.Node) -> bool:
    """A dropout call: the identity in eval mode, so the cut goes before it."""
    if node.op == "call_module":
        return isinstance(network.get_submodule(node.target), nn.modules.dropout._DropoutNd)
    return node.op == "call_function" and node.target in (nn.functional.dropout, torch.dropout)


def _module_name(node: fx.Node, graph: fx.Graph, names: dict[fx.Node, str]) -> str:
    """A function node's name widened to the innermost module whose last traced node it is
    (SqueezeNet's ``features.12.cat`` is ``features.12``); a top-level function (``flatten``,
    ViT's ``getitem_5``) or a leaf module's call keeps its own name."""
    name = names[node]
    if node.op == "call_module":
        return name
    order = [names[n] for n in graph.nodes if n in names]
    parts = name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:end])
        if [n for n in order if _within(n, prefix)][-1] == name:
            return prefix
    return name


def _parts(network: nn.Module, expand: tuple[str, ...]) -> list[str]:
    """The network's children in registration order (input to output in torchvision), with each
    container named in ``expand`` replaced by its own children."""
    found: list[str] = []

    def walk(module: nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            path = prefix + name
            if path in expand:
                walk(child, path + ".")
            else:
                found.append(path)

    walk(network, "")
    return found


def _is_stage(network: nn.Module, path: str, head: str, live: set[str]) -> bool:
    """A part is a stage when it owns parameters, runs at eval, is not a norm layer (those train
    with the stage before them) and is not, nor holds, the head."""
    module = network.get_submodule(path)
    return (any(True for _ in module.parameters()) and not isinstance(module, _NORMS)
            and _runs(path, live) and not _within(head, path) and not _within(path, head))


def _trunk(network: nn.Module, parts: list[str], head: str, node: str, live: set[str],
           graph: fx.Graph, names: dict[fx.Node, str]) -> list[str]:
    """Feature candidates: the parts that run before the first adaptive pool (or the head) and are
    blocks, activations or pools (not bare layers, whose outputs in-place activations rewrite, nor
    dropout), other than the embedding node."""
    order = [names[n] for n in graph.nodes if n in names]
    first_pool = next((i for i, name in enumerate(order) if _is_adaptive_pool(network, name)), len(order))
    stop = min([first_pool, *(i for i, name in enumerate(order) if _within(name, head))])
    before = set(order[:stop])
    trunk = []
    for path in parts:
        module = network.get_submodule(path)
        if path == node or isinstance(module, (*_BARE, nn.modules.dropout._DropoutNd)):
            continue
        if _runs(path, live) and all(name in before for name in order if _within(name, path)):
            trunk.append(path)
    return trunk


def _is_adaptive_pool(network: nn.Module, name: str) -> bool:
    """An adaptive pool, as a module or a function node: where the classifier's input begins (a
    global pool, or VGG's and AlexNet's pool to the 7x7 / 6x6 their first Linear expects)."""
    try:
        module = network.get_submodule(name)
    except AttributeError:
        return name.startswith(("adaptive_avg_pool", "adaptive_max_pool"))
    return isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))


def _shapes(network: nn.Module, nodes: list[str], size: int) -> dict[str, tuple[int, ...]]:
    """Output shapes at ``nodes`` from torchvision's feature extractor run on a meta batch of one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "eval nodes are a subsequence of train nodes": dropout, aux heads
        extractor = create_feature_extractor(network, return_nodes={n: n for n in dict.fromkeys(nodes)})
    with torch.no_grad():
        outputs = extractor.eval()(torch.empty(1, 3, size, size, device="meta"))
    return {n: tuple(outputs[n].shape) for n in nodes}


def _features(trunk: list[str], shapes: dict[str, tuple[int, ...]], size: int, head_conv: bool) -> dict[str, int]:
    """The last NCHW trunk part at each output stride in :data:`STRIDES` -> that stride. With a
    head conv, the trailing parts as wide as the last one (the 1x1 conv widening for the head, its
    norm and activation) are left out first."""
    maps = [p for p in trunk if len(shapes[p]) == 4]
    if head_conv:
        width = shapes[maps[-1]][1]
        while maps and shapes[maps[-1]][1] == width:
            maps.pop()
    by_stride: dict[int, str] = {}
    for path in maps:
        stride = 2 ** round(math.log2(size / shapes[path][2]))
        if stride in STRIDES:
            by_stride[stride] = path
    return {by_stride[s]: s for s in STRIDES if s in by_stride}

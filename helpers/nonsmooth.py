"""Derivatives of nonsmooth compositions: what autograd returns and what is correct.

Automatic differentiation applies the chain rule to whatever "derivative" each primitive
reports at a kink (torch says relu'(0) = 0, abs'(0) = 0, ...). There is no chain rule for
subdifferentials, so the result can lie outside the Clarke subdifferential: on
``relu(x) - relu(-x)`` (which is the identity) autograd returns 0 at x = 0.

Kakade & Lee (2018), "Provably correct automatic subdifferentiation", observe that the
*one-sided directional derivative* ``f'(x; d) = lim_{t -> 0+} (f(x + t d) - f(x)) / t`` does
obey a chain rule for compositions of piecewise-smooth (locally Lipschitz, directionally
differentiable) primitives: ``(g o u)'(x; d) = g'(u(x); u'(x; d))``. Forward-mode AD with
one-sided rules at the kinks therefore computes it exactly. Choosing, at every kink, the
smooth branch that is active along a direction ``v`` (compare values first and, on a tie,
the directional derivatives along ``v``: a lexicographic comparison) selects one smooth
piece of ``f``; for a random ``v`` that piece agrees with ``f`` on an open cone at ``x``, so
its gradient (one reverse pass) is an element of the Clarke subdifferential.

Implementation: ``f`` is an ordinary Python function written with torch operations. It is
evaluated under a :class:`torch.overrides.TorchFunctionMode` that replaces each nonsmooth
primitive by ``torch.where(mask, branch_a, branch_b)`` with the mask chosen
lexicographically from the forward-mode (``torch.autograd.forward_ad``) primal and tangent.
With a fixed mask, forward- and reverse-mode AD of ``where`` are exact, so the directional
derivative and the gradient of the selected piece both come out of torch's own AD.

Primitives handled at their kinks: ``relu``, ``abs``/``absolute``, ``clamp``/``clip``/
``clamp_min``/``clamp_max``, ``maximum``/``minimum``/``fmax``/``fmin``, ``max``/``min``
(binary, full and per-dimension reductions), ``amax``/``amin``, the comparisons
``gt``/``ge``/``lt``/``le`` (so ``torch.where(x > 0, ...)`` picks the branch active along the
direction), and ``torch.nn.functional`` ``relu``, ``relu6``, ``leaky_relu``, ``hardtanh``,
``hardsigmoid``, ``hardswish``. Every other torch operation is treated as smooth (its own
forward/backward rules). Nonsmoothness that comes from other operations (``sort``, norms
at 0, ...) is outside this module's guarantee.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
from torch.overrides import TorchFunctionMode

__all__ = [
    "autodiff_derivative",
    "directional_derivative",
    "correct_derivative",
    "one_sided_derivatives",
    "HANDLED",
]


# ----------------------------------------------------------------------------- helpers
def _parts(u):
    """Primal and tangent (or None) of a tensor under forward AD; numbers become tensors."""
    if not isinstance(u, torch.Tensor):
        return torch.as_tensor(u), None
    p, t = fwAD.unpack_dual(u)
    return p.detach(), (None if t is None else t.detach())


def _lexsign(u):
    """sign of (value, tangent) in lexicographic order: the sign of u(x + t v) for small t > 0."""
    p, t = _parts(u)
    s = torch.sign(p)
    if t is not None:
        s = torch.where(s == 0, torch.sign(t), s)
    return s


def _tensor_like(value, ref):
    if isinstance(value, torch.Tensor):
        return value
    return torch.as_tensor(value, dtype=ref.dtype)


def _zero(u):
    return torch.zeros((), dtype=u.dtype)


def _relu(u, inplace=False):
    return torch.where(_lexsign(u) > 0, u, _zero(u))


def _abs(u):
    return torch.where(_lexsign(u) >= 0, u, -u)


def _leaky_relu(u, negative_slope=0.01, inplace=False):
    return torch.where(_lexsign(u) >= 0, u, negative_slope * u)


def _maximum(a, b):
    ref = a if isinstance(a, torch.Tensor) else b
    a, b = _tensor_like(a, ref), _tensor_like(b, ref)
    return torch.where(_lexsign(a - b) >= 0, a, b)


def _minimum(a, b):
    ref = a if isinstance(a, torch.Tensor) else b
    a, b = _tensor_like(a, ref), _tensor_like(b, ref)
    return torch.where(_lexsign(a - b) <= 0, a, b)


def _clamp(u, min=None, max=None):  # noqa: A002 - torch's own keyword names
    if min is None and max is None:
        raise ValueError("clamp needs min or max")
    out = u
    if min is not None:
        out = _maximum(out, min)
    if max is not None:  # torch.clamp returns max when min > max; so does this order
        out = _minimum(out, max)
    return out


def _clamp_min(u, min):  # noqa: A002
    return _clamp(u, min=min)


def _clamp_max(u, max):  # noqa: A002
    return _clamp(u, max=max)


def _hardtanh(u, min_val=-1.0, max_val=1.0, inplace=False):
    return _clamp(u, min_val, max_val)


def _relu6(u, inplace=False):
    return _clamp(u, 0.0, 6.0)


def _hardsigmoid(u, inplace=False):
    return _clamp(u / 6.0 + 0.5, 0.0, 1.0)


def _hardswish(u, inplace=False):
    return u * _hardsigmoid(u)


def _lex_argmax(u, dim, sign):
    """Index along ``dim`` of the lexicographic maximum of sign*(value, tangent); first on ties."""
    p, t = _parts(u)
    p = sign * p
    cand = p == p.amax(dim, keepdim=True)
    if t is not None:
        tt = torch.where(cand, sign * t, torch.tensor(-float("inf"), dtype=t.dtype))
        cand = cand & (tt == tt.amax(dim, keepdim=True))
    # argmax of a 0/1 tensor returns the first maximal index
    return cand.to(torch.int8).argmax(dim, keepdim=True)


def _reduce(u, dim, keepdim, sign):
    if dim is None:
        flat = u.reshape(-1)
        idx = _lex_argmax(flat, 0, sign)
        return flat[idx[0]], None
    idx = _lex_argmax(u, dim, sign)
    values = torch.gather(u, dim, idx)
    if not keepdim:
        values, idx = values.squeeze(dim), idx.squeeze(dim)
    return values, idx.to(torch.int64)


def _extreme(sign, name):
    rtype = getattr(torch.return_types, name)

    def rule(u, *args, **kwargs):
        other = args[0] if args else kwargs.get("other", kwargs.get("dim"))
        if isinstance(other, torch.Tensor) and "dim" not in kwargs:
            return _maximum(u, other) if sign > 0 else _minimum(u, other)
        dim = args[0] if args else kwargs.get("dim")
        keepdim = args[1] if len(args) > 1 else kwargs.get("keepdim", False)
        values, idx = _reduce(u, dim, keepdim, sign)
        return values if dim is None else rtype((values, idx))

    return rule


def _amax_like(sign):
    def rule(u, dim=(), keepdim=False):
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        if not dims:
            values, _ = _reduce(u, None, False, sign)
            return values.reshape([1] * u.dim()) if keepdim else values
        dims = sorted(d % u.dim() for d in dims)
        keep = [d for d in range(u.dim()) if d not in dims]
        moved = u.permute(*keep, *dims)
        flat = moved.reshape(*[u.shape[d] for d in keep], -1)
        values, _ = _reduce(flat, flat.dim() - 1, False, sign)
        if keepdim:
            shape = [1 if d in dims else u.shape[d] for d in range(u.dim())]
            values = values.reshape(shape)
        return values

    return rule


def _compare(test):
    def rule(a, b):
        ref = a if isinstance(a, torch.Tensor) else b
        return test(_lexsign(_tensor_like(a, ref) - _tensor_like(b, ref)))

    return rule


_RULES = {
    "relu": _relu,
    "abs": _abs,
    "absolute": _abs,
    "__abs__": _abs,
    "leaky_relu": _leaky_relu,
    "maximum": _maximum,
    "fmax": _maximum,
    "minimum": _minimum,
    "fmin": _minimum,
    "clamp": _clamp,
    "clip": _clamp,
    "clamp_min": _clamp_min,
    "clamp_max": _clamp_max,
    "hardtanh": _hardtanh,
    "relu6": _relu6,
    "hardsigmoid": _hardsigmoid,
    "hardswish": _hardswish,
    "max": _extreme(+1, "max"),
    "min": _extreme(-1, "min"),
    "amax": _amax_like(+1),
    "amin": _amax_like(-1),
}
for _names, _test in [
    (("gt", "greater", "__gt__"), lambda s: s > 0),
    (("ge", "greater_equal", "__ge__"), lambda s: s >= 0),
    (("lt", "less", "__lt__"), lambda s: s < 0),
    (("le", "less_equal", "__le__"), lambda s: s <= 0),
]:
    for _n in _names:
        _RULES[_n] = _compare(_test)

#: names of the torch primitives whose kinks this module handles
HANDLED = tuple(sorted(_RULES))


def _has_float_tensor(obj) -> bool:
    if isinstance(obj, torch.Tensor):
        return obj.is_floating_point()
    if isinstance(obj, (list, tuple)):
        return any(_has_float_tensor(o) for o in obj)
    return False


class _OneSided(TorchFunctionMode):
    """Evaluate torch code with every handled kink resolved lexicographically."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rule = _RULES.get(getattr(func, "__name__", None))
        if rule is not None and (_has_float_tensor(args) or _has_float_tensor(list(kwargs.values()))):
            return rule(*args, **kwargs)
        return func(*args, **kwargs)


# ----------------------------------------------------------------------------- inputs
def _point(x, name="x"):
    scalar = isinstance(x, numbers.Real) or (np.ndim(x) == 0)
    try:
        if isinstance(x, torch.Tensor):
            t = x.detach().to(torch.float64).clone()
        else:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number or an array of real numbers, got {x!r}") from None
    if t.numel() == 0:
        raise ValueError(f"{name} is empty; pass at least one coordinate")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite entries")
    return t, scalar


def _check_f(f):
    if not callable(f):
        raise ValueError("f must be a callable mapping a torch tensor to a scalar tensor")


def _scalar_output(out):
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"f must return a torch tensor (built from its input), got {type(out).__name__}")
    if out.numel() != 1:
        raise ValueError(f"f must return a single number, got shape {tuple(out.shape)}; sum or index it")
    return out.reshape(())


def _result(g, scalar):
    g = g.detach().cpu().numpy().astype(np.float64)
    return float(g.reshape(())) if scalar else g


# ----------------------------------------------------------------------------- public API
def autodiff_derivative(f, x):
    """The gradient that torch autograd returns for ``f`` at ``x`` (correct or not).

    ``f`` maps a float64 tensor shaped like ``x`` to a scalar tensor. A float for scalar
    ``x``, else an array shaped like ``x``. At a kink torch uses its own convention for each
    primitive (relu'(0) = 0, abs'(0) = 0, clamp passes the gradient when on the boundary, ...).
    """
    _check_f(f)
    x0, scalar = _point(x)
    x0.requires_grad_(True)
    out = _scalar_output(f(x0))
    if not out.requires_grad:
        return _result(torch.zeros_like(x0), scalar)
    (g,) = torch.autograd.grad(out, x0, allow_unused=True)
    return _result(torch.zeros_like(x0) if g is None else g, scalar)


def directional_derivative(f, x, direction):
    """The one-sided directional derivative ``f'(x; d) = lim_{t->0+} (f(x+td) - f(x)) / t``.

    Exact (up to floating point) for compositions of smooth torch operations and the
    primitives in :data:`HANDLED`, by forward-mode AD with one-sided rules at the kinks
    (Kakade & Lee 2018). ``direction`` has the shape of ``x``; returns a float.
    """
    _check_f(f)
    x0, _ = _point(x)
    d, _ = _point(direction, "direction")
    if d.shape != x0.shape:
        raise ValueError(f"direction has shape {tuple(d.shape)} but x has shape {tuple(x0.shape)}")
    with fwAD.dual_level():
        xd = fwAD.make_dual(x0, d)
        with _OneSided():
            out = f(xd)
        out = _scalar_output(out)
        _, tangent = fwAD.unpack_dual(out)
    return 0.0 if tangent is None else float(tangent.detach())


def correct_derivative(f, x, direction=None, seed=0):
    """An element of the Clarke subdifferential of ``f`` at ``x`` (Kakade & Lee 2018).

    At every kink the smooth branch active along ``direction`` is chosen (lexicographically:
    values first, then directional derivatives along it), and the gradient of the resulting
    smooth piece is returned (one forward-mode pass and one reverse pass). With the default
    ``direction=None`` the direction is a standard Gaussian drawn from ``seed``; for almost
    every direction the chosen piece agrees with ``f`` on an open cone at ``x``, so the result
    is a limit of true gradients. For scalar ``x`` and ``direction=+1`` (``-1``) it is the right
    (left) derivative. Returns a float for scalar ``x``, else an array shaped like ``x``.
    """
    _check_f(f)
    x0, scalar = _point(x)
    if direction is None:
        rng = np.random.default_rng(seed)
        v = torch.as_tensor(rng.standard_normal(tuple(x0.shape)))
    else:
        v, _ = _point(direction, "direction")
        if v.shape != x0.shape:
            raise ValueError(f"direction has shape {tuple(v.shape)} but x has shape {tuple(x0.shape)}")
    if not bool((v != 0).any()):
        raise ValueError("direction must be nonzero: it chooses the piece of f whose gradient is returned")
    x0.requires_grad_(True)
    with fwAD.dual_level():
        xd = fwAD.make_dual(x0, v)
        with _OneSided():
            out = f(xd)
        primal = fwAD.unpack_dual(_scalar_output(out)).primal
    if not primal.requires_grad:
        return _result(torch.zeros_like(x0), scalar)
    (g,) = torch.autograd.grad(primal, x0, allow_unused=True)
    return _result(torch.zeros_like(x0) if g is None else g, scalar)


def one_sided_derivatives(f, x):
    """``(left, right)`` derivatives of a function of one real variable at ``x``.

    ``left = -f'(x; -1)`` and ``right = f'(x; +1)``; for piecewise-smooth ``f`` the Clarke
    subdifferential at ``x`` is the interval between them.
    """
    x0, scalar = _point(x)
    if not scalar and x0.numel() != 1:
        raise ValueError("one_sided_derivatives is for functions of one variable; x must be a number")
    x0 = x0.reshape(())
    return -directional_derivative(f, x0, -1.0), directional_derivative(f, x0, 1.0)

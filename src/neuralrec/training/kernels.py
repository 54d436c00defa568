"""Compiled (numba) loops for the row updates of embedding tables on the CPU.

A mini-batch of an embedding model touches a few thousand rows; in torch every update rule
is a chain of gathers, elementwise ops and scatters over the batch, each a pass over memory
plus dispatch overhead, and Adam needs the rows coalesced (a sort) first. These loops do the
same arithmetic in one pass per table: the per-occurrence gradients of a batch go in, the rows
and the optimizer state (the same tensors :class:`~neuralrec.training.optim.RowSparse` keeps,
so checkpoints do not care which path ran) are updated in place. They run single-threaded and
in a fixed order, so results are reproducible.

Every function here computes what the torch path computes, up to float rounding; tests check
them against it. numba compiles them on first use and caches the machine code on disk.
``error_model="numpy"`` drops Python's division-by-zero check (the loops then vectorise: Adam's
row update ran 5x faster) and ``fastmath`` lets reductions reorder.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def sgd_rows(table, rows, grads, lr):  # pragma: no cover - compiled
    """table[rows[s]] -= lr * grads[s] for every occurrence s (duplicates add up)."""
    k = table.shape[1]
    for s in range(rows.shape[0]):
        r = rows[s]
        for f in range(k):
            table[r, f] -= lr * grads[s, f]


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def rowwise_adagrad_rows(table, acc, rows, grads, lr, eps):  # pragma: no cover - compiled
    """Row-wise Adagrad: each occurrence adds its mean squared gradient to its row's
    accumulator; then every occurrence steps by lr / sqrt(acc + eps) with the final sums."""
    n, k = grads.shape
    for s in range(n):
        sq = 0.0
        for f in range(k):
            sq += grads[s, f] * grads[s, f]
        acc[rows[s]] += sq / k
    for s in range(n):
        r = rows[s]
        scale = lr / np.sqrt(acc[r] + eps)
        for f in range(k):
            table[r, f] -= scale * grads[s, f]


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def adam_rows(
    table, exp_avg, exp_avg_sq, steps, rows, grads, lr, beta1, beta2, eps, slot, scratch, uniq
):  # pragma: no cover - compiled
    """Lazy Adam: the occurrences of each row are summed (as coalescing would), then each
    touched row takes one Adam step with its own step count for the bias correction.

    ``slot`` (one int per table row, all -1 between calls), ``scratch`` (at least as many rows
    as distinct ``rows``, k wide) and ``uniq`` (as long) are work space the caller keeps
    between calls.
    """
    n, k = grads.shape
    count = 0
    for s in range(n):
        r = rows[s]
        j = slot[r]
        if j < 0:
            j = count
            slot[r] = j
            uniq[j] = r
            count += 1
            for f in range(k):
                scratch[j, f] = 0.0
        for f in range(k):
            scratch[j, f] += grads[s, f]
    # float32 throughout the element loop so it vectorises; the bias corrections are folded
    # into a step size and a denominator scale per row, as torch's Adam does
    b1 = np.float32(beta1)
    b2 = np.float32(beta2)
    c1 = np.float32(1.0) - b1
    c2 = np.float32(1.0) - b2
    e = np.float32(eps)
    for j in range(count):
        r = uniq[j]
        slot[r] = -1
        t = steps[r] + 1.0
        steps[r] = t
        step = np.float32(lr / (1.0 - beta1**t))
        inv_bc2 = np.float32(1.0 / np.sqrt(1.0 - beta2**t))
        mr = exp_avg[r]
        vr = exp_avg_sq[r]
        tr = table[r]
        sj = scratch[j]
        for f in range(k):
            g = sj[f]
            m = b1 * mr[f] + c1 * g
            v = b2 * vr[f] + c2 * g * g
            mr[f] = m
            vr[f] = v
            tr[f] -= step * m / (np.sqrt(v) * inv_bc2 + e)


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def mf_mse_grads(
    P, Q, A, B, wu, wi, users, items, ratings, mu, bias_l2, gp, gq, ga, gb
):  # pragma: no cover - compiled
    """Biased MF's regularised squared error over a batch and its per-sample gradients.

    loss = (Σ e² + Σ wu‖p_u‖² + Σ wi‖q_i‖² + λ_b Σ (a_u² + b_i²)) / n with
    e = μ + a_u + b_i + p_uᵀq_i − r; the gradients of each sample w.r.t. its rows go to
    ``gp, gq`` (n x k) and ``ga, gb`` (n x 1). ``A``/``B`` are the (rows x 1) bias tables.
    """
    n = ratings.shape[0]
    k = P.shape[1]
    c = np.float32(2.0 / n)
    lb = np.float32(bias_l2)
    loss = 0.0
    for s in range(n):
        p = P[users[s]]
        q = Q[items[s]]
        # float32 accumulators: the loop vectorises (float64 ones halve the vector width)
        dot = np.float32(0.0)
        pp = np.float32(0.0)
        qq = np.float32(0.0)
        for f in range(k):
            dot += p[f] * q[f]
            pp += p[f] * p[f]
            qq += q[f] * q[f]
        a = A[users[s], 0]
        b = B[items[s], 0]
        err = dot + a + b + np.float32(mu) - ratings[s]
        cu = c * wu[users[s]]
        ci = c * wi[items[s]]
        loss += err * err + cu / c * pp + ci / c * qq + lb * (a * a + b * b)
        e = c * err
        gps = gp[s]
        gqs = gq[s]
        for f in range(k):
            gps[f] = e * q[f] + cu * p[f]
            gqs[f] = e * p[f] + ci * q[f]
        ga[s, 0] = e + c * lb * a
        gb[s, 0] = e + c * lb * b
    return loss / n


# ---------------------------------------------------------------------------- dropout
# Counter-based: the word for entries 2b and 2b+1 is a 32-bit hash of (b, seed), two rounds of
# Wellons' "lowbias32" mixer keyed by the seed's two halves; its halves are two 16-bit uniforms,
# and an entry is dropped when its uniform is below round(p * 65536). With no state carried from
# one word to the next, and 32-bit multiplies only, the loop vectorises (AVX2: 4.5x faster
# than a sequential splitmix64 stream on NCF's tower outputs). The stream depends on the seed
# alone, so a run of dropout_inplace over ones gives the mask that the same seed applies to any
# array of that size.
_WEYL = np.uint32(0x9E3779B9)
_LB1 = np.uint32(0x7FEB352D)
_LB2 = np.uint32(0x846CA68B)


@njit(cache=True, nogil=True, inline="always")
def _hash32(b, lo, hi):  # pragma: no cover - compiled
    # every product truncated to 32 bits: numba widens mixed-width integer arithmetic
    z = np.uint32(np.uint32(b) * _WEYL + lo)
    z ^= z >> np.uint32(16)
    z = np.uint32(z * _LB1)
    z ^= z >> np.uint32(15)
    z = np.uint32((z ^ hi) * _LB2)
    return z ^ (z >> np.uint32(16))


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def dropout_inplace(x, threshold, scale, seed):  # pragma: no cover - compiled
    """Inverted dropout on a flat float array: dropped entries become 0, kept ones x * scale."""
    n = x.shape[0]
    t = np.uint32(threshold)
    lo = np.uint32(seed & 0xFFFFFFFF)
    hi = np.uint32((seed >> 32) & 0xFFFFFFFF)
    zero = np.float32(0.0)
    for b in range(n // 2):
        z = _hash32(b, lo, hi)
        # both loads before the stores: otherwise the loop does not vectorise (3.5x slower)
        u, v = x[2 * b], x[2 * b + 1]
        x[2 * b] = u * scale if (z & np.uint32(0xFFFF)) >= t else zero
        x[2 * b + 1] = v * scale if (z >> np.uint32(16)) >= t else zero
    if n % 2:
        z = _hash32(n // 2, lo, hi)
        x[n - 1] = x[n - 1] * scale if (z & np.uint32(0xFFFF)) >= t else zero


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def relu_grad_inplace(dh, h, scale):  # pragma: no cover - compiled
    """dh[i] = dh[i] * scale where h[i] > 0, else 0 (ReLU's backward with dropout's scale)."""
    zero = np.float32(0.0)
    for i in range(dh.shape[0]):
        v = dh[i]
        dh[i] = v * scale if h[i] > 0 else zero


# ---------------------------------------------------------------------------- NCF head
# The NCF head (models/ncf_fused.py) on one CPU process: the gathers of distinct rows into
# (user, item) pairs, the ReLU and dropout passes and the scatters of their gradients back to
# the distinct rows, one pass each instead of a chain of torch ops and temporaries. The matrix
# products stay with torch. Dropout masks are dropout_inplace's for the same array layout.


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def relu_dropout_inplace(x, threshold, scale, seed):  # pragma: no cover - compiled
    """ReLU, then inverted dropout with :func:`dropout_inplace`'s mask (flat, even length)."""
    t = np.uint32(threshold)
    lo = np.uint32(seed & 0xFFFFFFFF)
    hi = np.uint32((seed >> 32) & 0xFFFFFFFF)
    zero = np.float32(0.0)
    for b in range(x.shape[0] // 2):
        z = _hash32(b, lo, hi)
        u, v = x[2 * b], x[2 * b + 1]
        x[2 * b] = u * scale if u > zero and (z & np.uint32(0xFFFF)) >= t else zero
        x[2 * b + 1] = v * scale if v > zero and (z >> np.uint32(16)) >= t else zero


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def ncf_first_layer(user_half, item_half, u_inv, i_inv, threshold, scale, seed, out):
    # pragma: no cover - compiled
    """out[b, j] = dropout(relu(item_half[i_inv[b, j]] + user_half[u_inv[b]])): the first
    tower layer of every pair from its distinct rows' halves (width even; threshold 0: no
    dropout), with the mask dropout_inplace draws for out's flat layout."""
    n, m = i_inv.shape
    k = out.shape[2]
    half = k // 2
    t = np.uint32(threshold)
    lo = np.uint32(seed & 0xFFFFFFFF)
    hi = np.uint32((seed >> 32) & 0xFFFFFFFF)
    zero = np.float32(0.0)
    for b in range(n):
        u = user_half[u_inv[b]]
        for j in range(m):
            it = item_half[i_inv[b, j]]
            o = out[b, j]
            if threshold == 0:
                for f in range(k):
                    v = it[f] + u[f]
                    o[f] = v if v > zero else zero
            else:
                base = (b * m + j) * half
                for f in range(half):
                    z = _hash32(base + f, lo, hi)
                    v0 = it[2 * f] + u[2 * f]
                    v1 = it[2 * f + 1] + u[2 * f + 1]
                    o[2 * f] = v0 * scale if v0 > zero and (z & np.uint32(0xFFFF)) >= t else zero
                    o[2 * f + 1] = v1 * scale if v1 > zero and (z >> np.uint32(16)) >= t else zero


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def ncf_gmf_logits(ue, ie, u_inv, i_inv, w, g, logits):  # pragma: no cover - compiled
    """logits[b, j] += Σ_f<g ue[u_inv[b], f] · w[f] · ie[i_inv[b, j], f]."""
    n, m = i_inv.shape
    for b in range(n):
        p = ue[u_inv[b]]
        for j in range(m):
            q = ie[i_inv[b, j]]
            s = np.float32(0.0)
            for f in range(g):
                s += p[f] * w[f] * q[f]
            logits[b, j] += s


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def ncf_gmf_backward(grad, ue, ie, u_inv, i_inv, w, g, g_ue, g_ie, g_w):
    # pragma: no cover - compiled
    """Gradients of :func:`ncf_gmf_logits` from the logits' ``grad`` (n, m): written over the
    first g columns of ``g_ue`` and ``g_ie`` (per distinct row) and over ``g_w`` (g,)."""
    n, m = i_inv.shape
    zero = np.float32(0.0)
    for r in range(g_ue.shape[0]):
        for f in range(g):
            g_ue[r, f] = zero
    for r in range(g_ie.shape[0]):
        for f in range(g):
            g_ie[r, f] = zero
    for f in range(g):
        g_w[f] = zero
    for b in range(n):
        u = u_inv[b]
        p = ue[u]
        gp = g_ue[u]
        for j in range(m):
            i = i_inv[b, j]
            c = grad[b, j]
            q = ie[i]
            gq = g_ie[i]
            for f in range(g):
                g_w[f] += c * p[f] * q[f]
                gp[f] += c * w[f] * q[f]
                gq[f] += c * w[f] * p[f]


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def ncf_out_backward(grad, w, h, scale, g_w, dpre):  # pragma: no cover - compiled
    """The output layer's backward into the last tower layer, for rows r of h (R, k):
    g_w[f] = Σ_r grad[r] · h[r, f] and dpre[r, f] = grad[r] · w[f] · scale where h > 0."""
    k = h.shape[1]
    zero = np.float32(0.0)
    for f in range(k):
        g_w[f] = zero
    for r in range(h.shape[0]):
        c = grad[r]
        cs = c * scale
        hr = h[r]
        dr = dpre[r]
        for f in range(k):
            v = hr[f]
            g_w[f] += c * v
            dr[f] = cs * w[f] if v > zero else zero


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def ncf_first_layer_backward(dh, h, u_inv, i_inv, scale, du, di, db):
    # pragma: no cover - compiled
    """ReLU's backward (with dropout's scale) through the first layer's output h (n, m, k),
    summed per distinct user into ``du``, per distinct item into ``di`` and over all into
    ``db`` (all three written over)."""
    n, m = i_inv.shape
    k = h.shape[2]
    zero = np.float32(0.0)
    du[:] = zero
    di[:] = zero
    db[:] = zero
    for b in range(n):
        gu = du[u_inv[b]]
        for j in range(m):
            gi = di[i_inv[b, j]]
            d = dh[b, j]
            hv = h[b, j]
            for f in range(k):
                x = d[f] * scale if hv[f] > zero else zero
                gu[f] += x
                gi[f] += x
                db[f] += x


@njit(cache=True, nogil=True, error_model="numpy")
def distinct_rows(idx, mark, uniq, inv):  # pragma: no cover - compiled
    """The distinct values of ``idx`` in increasing order into ``uniq`` (returns how many) and
    each entry's position among them into ``inv``: torch.unique(sorted, return_inverse) by
    one scan of the table's rows. ``mark`` (one int per table row, all -1 between calls) is
    work space the caller keeps."""
    for s in range(idx.shape[0]):
        mark[idx[s]] = 0
    count = 0
    for r in range(mark.shape[0]):
        if mark[r] == 0:
            mark[r] = count
            uniq[count] = r
            count += 1
    for s in range(idx.shape[0]):
        inv[s] = mark[idx[s]]
    for j in range(count):
        mark[uniq[j]] = -1
    return count


def warm_up() -> None:
    """Load the loops that CPU training calls (the row updates, biased MF's squared error and
    the NCF head), with the
    argument types training passes, so that a process's first epoch does not pay for it:
    numba reads a function's machine code from its disk cache on the first call, about 0.5 s
    for the first function of a process and a few ms for each further one. Cheap once done."""
    f4, i8 = np.float32, np.int64
    table, grads = np.zeros((2, 2), f4), np.zeros((2, 2), f4)
    vec, rows, idx2 = np.zeros(2, f4), np.zeros(2, i8), np.zeros((2, 1), i8)
    slot = np.full(2, -1, i8)
    sgd_rows(table, rows, grads, 0.0)
    rowwise_adagrad_rows(table, vec, rows, grads, 0.0, 1.0)
    adam_rows(table, table.copy(), table.copy(), vec, rows, grads, 0.0, 0.9, 0.9, 1.0, slot,
              grads.copy(), rows.copy())  # fmt: skip
    flat = np.zeros(4, f4)
    dropout_inplace(flat, 0, f4(1.0), 0)
    relu_dropout_inplace(flat, 0, f4(1.0), 0)
    relu_grad_inplace(flat, flat.copy(), f4(1.0))
    cube = np.zeros((2, 1, 2), f4)
    ncf_first_layer(table, table, rows, idx2, 0, f4(1.0), 0, cube)
    ncf_gmf_logits(table, table, rows, idx2, vec, 2, np.zeros((2, 1), f4))
    ncf_gmf_backward(np.zeros((2, 1), f4), table, table, rows, idx2, vec, 2, grads, grads.copy(),
                     vec.copy())  # fmt: skip
    ncf_out_backward(vec, vec, table, f4(1.0), vec.copy(), grads)
    ncf_first_layer_backward(cube, cube.copy(), rows, idx2, f4(1.0), grads, grads.copy(),
                             vec.copy())  # fmt: skip
    distinct_rows(rows, np.full(2, -1, i8), rows.copy(), rows.copy())
    col = np.zeros((2, 1), f4)
    mf_mse_grads(table, table, col, col, vec, vec, rows, rows, vec, 0.0, 0.0, grads, grads.copy(),
                 col.copy(), col.copy())  # fmt: skip

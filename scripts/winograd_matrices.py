#!/usr/bin/env python3
"""Winograd / Toom-Cook matrices for F(m, r) at given interpolation points (plus infinity), in exact
rationals, checked against the direct correlation y[i] = sum_k d[i + k] g[k] on random integers.

kernels/winograd.ts's F(4x4, 2x2) came from `python3 scripts/winograd_matrices.py 4 2 0 1 -1 2`.
Y = A^T [(G g) . (B^T d)] per dimension; the 2-D algorithm nests it (Y = A^T [(G g G^T) . (B^T d B)] A).
"""
import random
import sys
from fractions import Fraction


def polymul(a, b):
    out = [Fraction(0)] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i + j] += x * y
    return out


def matrices(m, r, points):
    n = m + r - 1
    if len(points) != n - 1:
        raise SystemExit(f"F({m}, {r}) needs {n - 1} finite points, got {len(points)}")
    p = [Fraction(x) for x in points]
    at = [[p[j] ** i for j in range(n - 1)] + [Fraction(int(i == m - 1))] for i in range(m)]
    g = []
    for j in range(n - 1):
        f = Fraction(1)
        for l in range(n - 1):
            if l != j:
                f *= p[j] - p[l]
        g.append([p[j] ** k / f for k in range(r)])
    g.append([Fraction(int(k == r - 1)) for k in range(r)])
    bt = []
    for j in range(n):
        poly = [Fraction(1)]
        for l in range(n - 1):
            if l != j:
                poly = polymul(poly, [-p[l], Fraction(1)])
        bt.append(poly + [Fraction(0)] * (n - len(poly)))
    return at, g, bt


def correlates(m, r, at, g, bt, trials=200):
    n = m + r - 1
    for _ in range(trials):
        d = [Fraction(random.randint(-9, 9)) for _ in range(n)]
        w = [Fraction(random.randint(-9, 9)) for _ in range(r)]
        u = [sum(g[j][k] * w[k] for k in range(r)) for j in range(n)]
        v = [sum(bt[j][k] * d[k] for k in range(n)) for j in range(n)]
        y = [sum(at[i][j] * u[j] * v[j] for j in range(n)) for i in range(m)]
        if y != [sum(d[i + k] * w[k] for k in range(r)) for i in range(m)]:
            return False
    return True


def main():
    if len(sys.argv) < 4:
        raise SystemExit("usage: winograd_matrices.py m r point... (e.g. 4 2 0 1 -1 2)")
    m, r = int(sys.argv[1]), int(sys.argv[2])
    at, g, bt = matrices(m, r, [Fraction(x) for x in sys.argv[3:]])
    for name, mat in (("AT", at), ("G", g), ("BT", bt)):
        print(name)
        for row in mat:
            print("  [" + ", ".join(str(x) for x in row) + "]")
    ok = correlates(m, r, at, g, bt)
    print("checked against the direct correlation:", "ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

"""The train/validation/test split of `backprop train` on a CSV file, reproduced in Python.

Backprop shuffles with .NET's `new System.Random(seed)` (Knuth's subtractive generator, the seeded
algorithm .NET keeps for compatibility) and splits as src/Backprop/Data/DataSplit.cs does: class labels
stratified (each class shuffled and cut in turn, then each split shuffled), values and multi-label at random.
"""

MBIG = 2**31 - 1
MSEED = 161803398


class DotnetRandom:
    def __init__(self, seed):
        a = [0] * 56
        subtraction = MBIG if seed == -2**31 else abs(seed)
        mj = MSEED - subtraction
        a[55] = mj
        mk = 1
        ii = 0
        for _ in range(1, 55):
            ii += 21
            if ii >= 55:
                ii -= 55
            a[ii] = mk
            mk = mj - mk
            if mk < 0:
                mk += MBIG
            mj = a[ii]
        for _ in range(1, 5):
            for i in range(1, 56):
                n = i + 30
                if n >= 55:
                    n -= 55
                a[i] -= a[1 + n]
                if a[i] < 0:
                    a[i] += MBIG
        self.a, self.inext, self.inextp = a, 0, 21

    def _sample(self):
        i = self.inext + 1
        if i >= 56:
            i = 1
        p = self.inextp + 1
        if p >= 56:
            p = 1
        r = self.a[i] - self.a[p]
        if r == MBIG:
            r -= 1
        if r < 0:
            r += MBIG
        self.a[i], self.inext, self.inextp = r, i, p
        return r

    def next(self, max_value):
        return int(self._sample() * (1.0 / MBIG) * max_value)


def shuffle(values, rng):
    for i in range(len(values) - 1, 0, -1):
        j = rng.next(i + 1)
        values[i], values[j] = values[j], values[i]


def take(n, fraction):
    import math
    x = n * fraction
    return min(n, int(math.floor(x + 0.5)))  # MidpointRounding.AwayFromZero for x >= 0


def split(n, seed, labels=None, validation=0.15, test=0.2):
    """(train, validation, test) row indices; stratified when class labels (sortable class indices) are given."""
    rng = DotnetRandom(seed)
    if labels is None:
        p = list(range(n))
        shuffle(p, rng)
        nt = take(n, test)
        nv = min(take(n, validation), n - nt)
        return p[nt + nv:], p[nt:nt + nv], p[:nt]
    by_class = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    tr, va, te = [], [], []
    for y in sorted(by_class):
        idx = list(by_class[y])
        shuffle(idx, rng)
        nt = take(len(idx), test)
        nv = min(take(len(idx), validation), len(idx) - nt)
        te += idx[:nt]
        va += idx[nt:nt + nv]
        tr += idx[nt + nv:]
    for part in (tr, va, te):
        shuffle(part, rng)
    return tr, va, te


if __name__ == "__main__":
    r = DotnetRandom(0)
    print([r.next(10 + i) for i in range(1, 6)])  # .NET: [7; 9; 9; 7; 3]
    r = DotnetRandom(7)
    print([r.next(1000) for _ in range(3)])  # .NET: [383; 871; 660]

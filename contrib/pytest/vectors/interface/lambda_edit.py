"""A module with something of every kind."""
import os

LIMIT = 10


def helper(n, scale=2, *args, key: int = 0, **kw) -> int:
    """Doubles."""
    total = 0
    for i in range(n):          # a comment in a body
        total += i * scale
    return total


def gen(items):
    for x in items:
        yield x


class Shape:
    sides = 4
    table = [i * i for i in range(3)]

    @staticmethod
    def area(w, h):
        return w * h

    async def fetch(self, url=os.sep):
        return url


square = lambda x: x ** 2
VALUE = helper(3)

"""kombu's own Redis transport tests, run against the project's broker classes.

``test_redis.py`` is kombu 5.7.0's ``t/unit/transport/test_redis.py``, unchanged, from the
kombu-5.7.0 sdist on PyPI (``pip download --no-deps --no-binary :all: kombu==5.7.0``; sdist
sha256 31e62fdfd2381caa3422f8e02b84a491d9a2180ddda74507b57f4cb1e1c2c2c9). kombu is
BSD-licensed: its copyright notice and license are in ``LICENSE`` here. ``conftest.py`` swaps
``workers.broker.resilience``'s classes in for kombu's, so every test of the module runs against
our channels, QoS and transports. When the kombu pin moves, replace the file with the new
version's and update this note.
"""

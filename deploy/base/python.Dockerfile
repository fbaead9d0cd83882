# A stand-in for python:3.11-slim, made from Debian's own packages where no image registry can be
# reached (tests/support/base_images.py builds it on a debootstrapped debian:bookworm-slim, in the
# private engine of `make image` only). Debian bookworm's python3 is 3.11; a virtual environment
# first on PATH gives `python`, `pip` and installed scripts where the official image has them.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /usr/local/python
ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
CMD ["python3"]

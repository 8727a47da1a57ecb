# cuemta container image (packaging/README.md, "Docker").
#
#   docker build -t cuemta .
#   docker run -d --name cuemta -p 25:25 -v cuemta-spool:/var/lib/cuemta \
#       -v /srv/cuemta/etc:/etc/cuemta:ro cuemta
#
# The admin API listens on 127.0.0.1:8025 inside the container: reach it
# with `docker exec cuemta cuemta status` (or `cuemta queue ls`, ...), which
# read the config named by CUEMTA_CONFIG.
# Readiness is GET /readyz on that API; the image has no shell, so there is
# no HEALTHCHECK.

# Build: a static binary, no cgo.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
        -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/usr/local/bin/cuemta ./cmd/cuemta \
    && mkdir -p /out/etc/cuemta /out/var/lib/cuemta \
    && cp packaging/docker/cuemta.cue /out/etc/cuemta/cuemta.cue

# Run: distroless, no shell, CA certificates included, user nonroot (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/usr/local/bin/cuemta /usr/local/bin/cuemta
COPY --from=build /out/etc/cuemta /etc/cuemta
COPY --from=build --chown=65532:65532 /out/var/lib/cuemta /var/lib/cuemta
USER 65532:65532
# The config `serve -c` reads; the client commands (status, queue, reload,
# sendmail) find the server through it.
ENV CUEMTA_CONFIG=/etc/cuemta
# The spool: spool: dir: "/var/lib/cuemta/spool" in the shipped config.
VOLUME ["/var/lib/cuemta"]
# SMTP (mx) and submission; the admin API (8025) stays on loopback.
EXPOSE 25 587
# SIGTERM drains for up to 30 s: stop with `docker stop -t 60`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cuemta"]
CMD ["serve", "-c", "/etc/cuemta", "-log-json"]

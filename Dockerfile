# syntax=docker/dockerfile:1
# One image with every Vigil binary (worker, web, starter, panel, mail, sms); the compose file's
# `command:` picks which one runs. The devserver is for development and tests only and is not in it.

FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# timetzdata embeds the zone database, so VIGIL_TIMEZONE works whatever the base image holds.
RUN go build -trimpath -tags timetzdata -ldflags='-s -w' -o /out/ ./worker ./web ./starter ./standins/...

FROM debian:bookworm-slim
# ca-certificates: TLS to Temporal Cloud, SMTP relays and the control panel; curl: healthchecks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
# An unprivileged user; the image holds no secrets (they come from the environment).
USER 65532:65532
EXPOSE 8080
CMD ["worker"]

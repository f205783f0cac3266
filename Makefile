# Vigil: the two commands a new machine needs are `make run` and `make test`.
.PHONY: run test load build vet fmt clean

## run: build everything and run the whole stack locally, in the foreground (Ctrl-C stops it)
run:
	bash scripts/run-local

## test: run every test, exactly as CI does
test:
	bash scripts/test

## load: measure the local stack under load, e.g. make load ARGS="-n 200 -c 20" or ARGS="-memory 10000" (see go run ./scripts/load -h)
load:
	go run ./scripts/load $(ARGS)

## build: build every binary into .bin/ (the devserver's first build takes ~6 minutes)
build:
	go build -o .bin/ ./worker ./web ./starter ./standins/...
	cd devserver && go build -o ../.bin/devserver .

## vet: go vet both modules
vet:
	go vet ./...
	cd devserver && go vet ./...

## fmt: gofmt every Go file
fmt:
	gofmt -w $$(git ls-files '*.go')

## clean: remove built binaries and local state (Temporal history, secrets, logs, seed tokens)
clean:
	rm -rf .bin .vigil

# Slipway: one-command set-up. `make up` runs the platform, `make test` runs the suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NODE_BIN := node_modules/.bin
TEST_CONCURRENCY ?= 2

.PHONY: help deps build generate up down status test bench clean

help:
	@echo "make up      install what is missing, build, start etcd, Docker, the API server and controllers, apply manifests/"
	@echo "make down    stop what make up started"
	@echo "make status  show what is running"
	@echo "make test    install what is missing, build, run the whole test suite"
	@echo "make bench   run the benchmarks in bench/"
	@echo "make generate  regenerate src/api/generated/ from crds/"

deps:
	@bash scripts/install-deps.sh

build: deps
	@$(NODE_BIN)/tsc -p tsconfig.json

generate: build
	@node dist/scripts/gen-crd-types.js
	@$(NODE_BIN)/tsc -p tsconfig.json

up: build
	@bash scripts/up.sh

down:
	@bash scripts/down.sh

status:
	@bash scripts/status.sh

test: build
	@node --test --test-concurrency=$(TEST_CONCURRENCY) --test-timeout=180000 --enable-source-maps --test-reporter=spec dist/test/*.test.js

bench: build
	@for b in dist/bench/*.js; do echo "== $$b"; node --enable-source-maps $$b || exit 1; done

clean:
	rm -rf dist

// Package deploy holds no code of its own: its tests check the deployment
// files at the repository's root (docker-compose.yml, the Dockerfile and
// scripts/compose-env) without a Docker engine, with the Compose
// specification's own loader.
package deploy

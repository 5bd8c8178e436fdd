//! Every integration and end-to-end test, and the workspace's own rules, as modules of one test binary. Each binary links
//! the whole stack (the AWS SDKs, tract, the local cloud: about 190 MB in a debug build), so
//! one binary instead of seven saves CI a gigabyte of disk and six links. The tests share
//! the binary's moto server; each provisions a stack of its own, so none sees another's
//! writes.

mod alarms_local;
mod cli_signer;
mod etl_pipeline;
mod ingest_api;
mod local_cloud;
mod loop_pipeline;
mod rollout_pipeline;
mod serving_pipeline;
mod template;
mod training_pipeline;
mod workspace;

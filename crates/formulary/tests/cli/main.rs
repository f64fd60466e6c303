//! End-to-end tests of the `formulary` binary: real processes, a real server on a real socket,
//! real OSV data.

#![expect(
    clippy::unwrap_used,
    reason = "test bodies shared by the SQLite and PostgreSQL variants are plain functions, which clippy's allow-unwrap-in-tests does not reach"
)]

mod administration;
mod advisories;
mod api_schema;
mod bad_input;
mod blobs_s3;
mod browser;
mod channel_notices;
mod cluster;
mod conda_token;
mod curated_closures;
mod databases;
mod deployment;
mod device_sign_in;
mod estate;
mod evidence;
mod faithful_pypi;
mod first_day;
mod formulary_cli;
mod gateway_auth;
mod gateway_conda;
mod gateway_conda_airgapped;
mod gateway_cran;
mod gateway_cran_airgapped;
mod gateway_npm;
mod gateway_npm_install_scripts;
mod gateway_pypi;
mod gateway_pypi_pages;
mod gateway_verified;
mod gateway_yarn;
mod moto;
mod notifications;
mod oidc;
mod oidc_account;
mod one_answer;
mod overlays;
mod people_api;
mod policy_check;
mod policy_files;
mod python_installs;
mod recall_explain;
mod recall_lifting;
mod recall_prohibitions;
mod refusals;
mod reliability;
mod reliability_database;
mod reliability_kill;
mod reliability_offline;
mod reliability_offline_tokens;
mod reliability_upstream;
mod replicas;
mod requests;
mod review_stages;
mod scoop;
mod security;
mod self_service;
mod server;
mod surveillance;
mod tamper;
mod tool_installers;
mod tool_signatures;
mod tools;
mod tools_web;
mod why;

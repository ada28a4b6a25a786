//! Helpers shared by the job runner's integration tests.
#![allow(dead_code)]

pub mod jobs;

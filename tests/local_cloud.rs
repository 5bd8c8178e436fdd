//! Shared by the end-to-end tests (included with `#[path]`, as cargo builds each test file
//! alone): a local cloud on the test binary's moto server, under a stack name of its own.

use std::net::{Ipv4Addr, SocketAddr};

use sluice_cli::{LocalCloud, LocalOptions};
use sluice_tests::{moto_endpoint, project_root, unique_stack_name};

pub async fn start() -> LocalCloud {
    let options = LocalOptions {
        project_root: project_root(),
        endpoint: Some(moto_endpoint().to_owned()),
        stack_name: unique_stack_name(),
        api_address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    };
    LocalCloud::start(&options).await.expect("local cloud starts")
}

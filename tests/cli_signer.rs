//! The `sluice` CLI's SigV4 signer (`sluice_cli::client::sign_request`, the AWS SDK's signer
//! behind it) against AWS's published SigV4 test suite: the requests and signatures below
//! are copied from its `v4/<name>/` cases (credentials AKIDEXAMPLE, region us-east-1,
//! service `service`, 2015-08-30T12:36:00Z). The CLI's commands are tested as a subprocess
//! in crates/cli/tests/cli.rs.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use bytes::Bytes;
use http::Request;
use sluice_cli::client::sign_request;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// 2015-08-30T12:36:00Z.
fn suite_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
}

fn signed(method: &str, uri: &str, session_token: Option<&str>) -> Request<Bytes> {
    let credentials = Credentials::new("AKIDEXAMPLE", SECRET, session_token.map(str::to_owned), None, "test suite");
    let mut request = Request::builder().method(method).uri(uri).body(Bytes::new()).unwrap();
    sign_request(&mut request, &credentials, "us-east-1", "service", suite_time()).expect("signs");
    request
}

fn header<'a>(request: &'a Request<Bytes>, name: &str) -> &'a str {
    request.headers().get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap()
}

#[test]
fn the_signer_reproduces_the_sigv4_test_suite() {
    let credential = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
    // (case, method, URI, signed headers, signature)
    let cases = [
        (
            "get-vanilla",
            "GET",
            "https://example.amazonaws.com/",
            "host;x-amz-date",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "post-vanilla",
            "POST",
            "https://example.amazonaws.com/",
            "host;x-amz-date",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        (
            "get-vanilla-query-order-key-case",
            "GET",
            "https://example.amazonaws.com/?Param2=value2&Param1=value1",
            "host;x-amz-date",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
    ];
    for (case, method, uri, signed_headers, signature) in cases {
        let request = signed(method, uri, None);
        assert_eq!(
            header(&request, "authorization"),
            format!("{credential}, SignedHeaders={signed_headers}, Signature={signature}"),
            "{case}"
        );
        assert_eq!(header(&request, "x-amz-date"), "20150830T123600Z", "{case}");
    }
}

#[test]
fn the_signer_signs_the_session_token_of_temporary_credentials() {
    // v4/get-vanilla-with-session-token: SSO and assumed-role credentials carry a token.
    let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
    let request = signed("GET", "https://example.amazonaws.com/", Some(token));
    assert_eq!(header(&request, "x-amz-security-token"), token);
    assert_eq!(
        header(&request, "authorization"),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date;x-amz-security-token, \
         Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
    );
}

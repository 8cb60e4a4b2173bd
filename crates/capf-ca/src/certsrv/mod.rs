//! Microsoft AD CS through its Web Enrollment pages (`/certsrv/`), the guide's "Microsoft CA"
//! Online CA Type: the pages' HTML (`page`) and NTLMv2 (`ntlm`), the authentication
//! Cisco's setup documents require of IIS.

// The client over the http module comes with issue 14's shared pieces; until then only the
// unit tests use these.
#[allow(dead_code)]
mod exchange;
#[allow(dead_code)]
mod ntlm;
#[allow(dead_code)]
mod page;

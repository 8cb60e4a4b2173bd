#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod codes;
mod deframer;
mod device_name;
mod error;
mod frame;
mod key_request;
mod message;
mod signed_content;
mod tlv;
mod value;

pub use codes::{AuthType, CertificateType, Command, Curve, HashAlgorithm, KeyType, Reason, Tag};
pub use deframer::Deframer;
pub use device_name::{DeviceName, DeviceNameError, DeviceNameKind};
pub use error::{Error, ErrorPolicy, Layer, ServerAction};
pub use frame::{
    Frame, HEADER_LEN, Header, MAX_BODY_LEN, MAX_MESSAGE_LEN, PROTOCOL_ID, Strictness,
};
pub use key_request::KeyRequest;
pub use message::{
    AuthRequest, AuthResponse, DeleteCertificateRequest, DeleteCertificateResponse, EndSession,
    FetchCertificateRequest, FetchCertificateResponse, KeyGenRequest, KeyGenResponse, Message,
    PHONE_ORDER, Payload, RawMessage, RequestInProgress, RetryLater, SERVER_ORDER, SignCertRequest,
    SignCertResponse, StoreCertificateRequest, StoreCertificateResponse,
};
pub use signed_content::{auth_signed_content, sudi_signed_content};
pub use tlv::{ELEMENT_HEADER_LEN, ElementOrder, Elements, MAX_ELEMENTS, RawElement, TagSet};
pub use value::{
    CERTIFICATE_HEADER_LEN, CertificateValue, CsrInfo, CsrSignature, MAX_CSR_INFO_LEN,
    MAX_CSR_SIGNATURE_LEN, MAX_DEVICE_NAME_LEN, MAX_PASSWORD_LEN, MAX_REASON_INFO_LEN,
    MAX_RETRY_DELAY_SECS, MAX_VALUE_LEN, MIN_RETRY_DELAY_SECS, RetryDelay, Sha2SignedData,
    SudiBlock, SudiData, Value,
};

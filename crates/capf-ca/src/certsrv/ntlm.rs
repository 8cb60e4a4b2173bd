//! The client side of NTLMv2 over HTTP (MS-NLMP), as IIS's Windows authentication asks for it:
//! NEGOTIATE_MESSAGE, then the AUTHENTICATE_MESSAGE computed from the server's
//! CHALLENGE_MESSAGE. No signing or sealing is negotiated (HTTP needs neither), so there is no
//! key exchange; the MIC is sent when the server's target info carries a timestamp (MS-NLMP
//! 3.1.5.1.2).

use hmac::{KeyInit, Mac};

/// NTLMSSP_NEGOTIATE_UNICODE (MS-NLMP 2.2.2.5, flag A).
const UNICODE: u32 = 0x0000_0001;
/// NTLMSSP_REQUEST_TARGET (C).
const REQUEST_TARGET: u32 = 0x0000_0004;
/// NTLMSSP_NEGOTIATE_NTLM (H).
const NTLM: u32 = 0x0000_0200;
/// NTLMSSP_NEGOTIATE_ALWAYS_SIGN (M).
const ALWAYS_SIGN: u32 = 0x0000_8000;
/// NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY (P).
const EXTENDED_SESSION_SECURITY: u32 = 0x0008_0000;
/// NTLMSSP_NEGOTIATE_TARGET_INFO (S).
const TARGET_INFO: u32 = 0x0080_0000;
/// NTLMSSP_NEGOTIATE_VERSION (T).
const VERSION: u32 = 0x0200_0000;
/// NTLMSSP_NEGOTIATE_128 (U).
const NEGOTIATE_128: u32 = 0x2000_0000;
/// NTLMSSP_NEGOTIATE_56 (W).
const NEGOTIATE_56: u32 = 0x8000_0000;

/// What this client asks for in NEGOTIATE_MESSAGE.
const CLIENT_FLAGS: u32 = UNICODE
    | REQUEST_TARGET
    | NTLM
    | ALWAYS_SIGN
    | EXTENDED_SESSION_SECURITY
    | VERSION
    | NEGOTIATE_128
    | NEGOTIATE_56;

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
/// The client's VERSION field (2.2.2.10): 10.0 build 20348, NTLMSSP_REVISION_W2K3.
const CLIENT_VERSION: [u8; 8] = [10, 0, 0x9c, 0x4f, 0, 0, 0, 0x0f];

/// AV_PAIR ids (2.2.2.1).
const AV_EOL: u16 = 0;
const AV_FLAGS: u16 = 6;
const AV_TIMESTAMP: u16 = 7;
/// MsvAvFlags bit: the AUTHENTICATE_MESSAGE carries a MIC.
const AV_FLAG_MIC: u32 = 0x0000_0002;

/// Offset of the MIC in AUTHENTICATE_MESSAGE (after the VERSION field), and of its payload.
const MIC_OFFSET: usize = 72;
const AUTHENTICATE_HEADER: usize = 88;

/// Why a CHALLENGE_MESSAGE cannot be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChallengeError {
    /// Shorter than its fixed fields, or a field runs past the end.
    Truncated,
    /// Not "NTLMSSP\0" with message type 2.
    NotAChallenge,
    /// The server did not offer NTLMv2 target information.
    NoTargetInfo,
}

impl ChallengeError {
    /// One line for the failure reason.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChallengeError::Truncated => "the NTLM challenge is truncated",
            ChallengeError::NotAChallenge => "the server's NTLM token is not a CHALLENGE_MESSAGE",
            ChallengeError::NoTargetInfo => {
                "the NTLM challenge carries no target information (NTLMv2 is required)"
            }
        }
    }
}

/// A user's NTLM credentials: `DOMAIN\user`, `user@domain` (a UPN, sent whole with no domain)
/// or a bare user name.
#[derive(Clone)]
pub(crate) struct Credentials<'a> {
    pub(crate) domain: &'a str,
    pub(crate) user: &'a str,
    pub(crate) password: &'a str,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("domain", &self.domain)
            .field("user", &self.user)
            .field("password", &"********")
            .finish()
    }
}

impl<'a> Credentials<'a> {
    /// Splits the guide's single username setting.
    pub(crate) fn new(username: &'a str, password: &'a str) -> Self {
        match username.split_once('\\') {
            Some((domain, user)) => Credentials {
                domain,
                user,
                password,
            },
            None => Credentials {
                domain: "",
                user: username,
                password,
            },
        }
    }
}

/// The parts of a CHALLENGE_MESSAGE (2.2.1.2) the response needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    flags: u32,
    server_challenge: [u8; 8],
    target_info: Vec<u8>,
}

fn le16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// A field given by its (length, max length, offset) triple at `at`.
fn field(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let len = usize::from(le16(bytes, at)?);
    let offset = usize::try_from(le32(bytes, at + 4)?).ok()?;
    bytes.get(offset..offset.checked_add(len)?)
}

impl Challenge {
    /// Reads a CHALLENGE_MESSAGE.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Challenge, ChallengeError> {
        if bytes.len() < 48 {
            return Err(ChallengeError::Truncated);
        }
        if &bytes[..8] != SIGNATURE || le32(bytes, 8) != Some(2) {
            return Err(ChallengeError::NotAChallenge);
        }
        let flags = le32(bytes, 20).ok_or(ChallengeError::Truncated)?;
        let mut server_challenge = [0; 8];
        server_challenge.copy_from_slice(&bytes[24..32]);
        let target_info = field(bytes, 40).ok_or(ChallengeError::Truncated)?;
        if target_info.is_empty() {
            return Err(ChallengeError::NoTargetInfo);
        }
        Ok(Challenge {
            flags,
            server_challenge,
            target_info: target_info.to_vec(),
        })
    }

    /// The AV_PAIRs of the target info, up to MsvAvEOL.
    fn av_pairs(&self) -> Result<Vec<(u16, &[u8])>, ChallengeError> {
        let mut pairs = Vec::new();
        let mut rest = self.target_info.as_slice();
        loop {
            let id = le16(rest, 0).ok_or(ChallengeError::Truncated)?;
            let len = usize::from(le16(rest, 2).ok_or(ChallengeError::Truncated)?);
            let value = rest.get(4..4 + len).ok_or(ChallengeError::Truncated)?;
            if id == AV_EOL {
                return Ok(pairs);
            }
            pairs.push((id, value));
            rest = &rest[4 + len..];
        }
    }
}

/// NEGOTIATE_MESSAGE (2.2.1.1): no domain or workstation supplied.
pub(crate) fn negotiate_message() -> Vec<u8> {
    let mut message = Vec::with_capacity(40);
    message.extend_from_slice(SIGNATURE);
    message.extend_from_slice(&1u32.to_le_bytes());
    message.extend_from_slice(&CLIENT_FLAGS.to_le_bytes());
    // DomainNameFields and WorkstationFields: empty, offset at the end of the message.
    for _ in 0..2 {
        message.extend_from_slice(&0u16.to_le_bytes());
        message.extend_from_slice(&0u16.to_le_bytes());
        message.extend_from_slice(&40u32.to_le_bytes());
    }
    message.extend_from_slice(&CLIENT_VERSION);
    message
}

fn unicode(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    // HMAC takes a key of any length; new_from_slice cannot fail for it.
    let mut mac = match hmac::Hmac::<md5::Md5>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac(),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cold]
fn unreachable_hmac() -> ! {
    unreachable!("HMAC accepts keys of every length")
}

/// NTOWFv2 (3.3.2): HMAC_MD5(MD4(UNICODE(Passwd)), UNICODE(Uppercase(User) || UserDom)).
fn ntowf_v2(credentials: &Credentials<'_>) -> [u8; 16] {
    use md4::Digest;
    let nt_hash: [u8; 16] = md4::Md4::digest(unicode(credentials.password)).into();
    let mut identity = unicode(&credentials.user.to_uppercase());
    identity.extend(unicode(credentials.domain));
    hmac_md5(&nt_hash, &[&identity])
}

/// The two responses and the session base key (3.3.2).
#[derive(Debug, PartialEq, Eq)]
struct Responses {
    lm: Vec<u8>,
    nt: Vec<u8>,
    session_base_key: [u8; 16],
}

/// NTLMv2's computation: `server_name` is the AV_PAIR list the client sends back (with EOL).
fn compute_responses(
    response_key: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
    time: &[u8; 8],
    server_name: &[u8],
    lm_zero: bool,
) -> Responses {
    let mut temp = vec![1, 1, 0, 0, 0, 0, 0, 0];
    temp.extend_from_slice(time);
    temp.extend_from_slice(client_challenge);
    temp.extend_from_slice(&[0; 4]);
    temp.extend_from_slice(server_name);
    temp.extend_from_slice(&[0; 4]);
    let nt_proof = hmac_md5(response_key, &[server_challenge, &temp]);
    let mut nt = nt_proof.to_vec();
    nt.extend_from_slice(&temp);
    let lm = if lm_zero {
        vec![0; 24]
    } else {
        let mut lm = hmac_md5(response_key, &[server_challenge, client_challenge]).to_vec();
        lm.extend_from_slice(client_challenge);
        lm
    };
    Responses {
        lm,
        nt,
        session_base_key: hmac_md5(response_key, &[&nt_proof]),
    }
}

/// AUTHENTICATE_MESSAGE (2.2.1.3) answering `challenge_bytes` (whose parse is `challenge`),
/// after `negotiate` was sent. `client_challenge` is 8 random bytes; `now` the FILETIME to use
/// when the server gave no timestamp.
pub(crate) fn authenticate_message(
    negotiate: &[u8],
    challenge_bytes: &[u8],
    challenge: &Challenge,
    credentials: &Credentials<'_>,
    client_challenge: [u8; 8],
    now: u64,
    workstation: &str,
) -> Result<Vec<u8>, ChallengeError> {
    let pairs = challenge.av_pairs()?;
    let timestamp = pairs
        .iter()
        .find(|(id, _)| *id == AV_TIMESTAMP)
        .and_then(|(_, value)| <[u8; 8]>::try_from(*value).ok());
    // With a server timestamp the client sends a MIC and says so in MsvAvFlags (3.1.5.1.2).
    let with_mic = timestamp.is_some();
    let mut server_name = Vec::new();
    let mut flags_value = 0u32;
    for (id, value) in &pairs {
        if *id == AV_FLAGS {
            flags_value = le32(value, 0).unwrap_or(0);
            continue;
        }
        push_av(&mut server_name, *id, value);
    }
    if with_mic {
        flags_value |= AV_FLAG_MIC;
    }
    if flags_value != 0 {
        push_av(&mut server_name, AV_FLAGS, &flags_value.to_le_bytes());
    }
    push_av(&mut server_name, AV_EOL, &[]);

    let time = timestamp.unwrap_or(now.to_le_bytes());
    let responses = compute_responses(
        &ntowf_v2(credentials),
        &challenge.server_challenge,
        &client_challenge,
        &time,
        &server_name,
        with_mic,
    );

    let flags = (challenge.flags & (CLIENT_FLAGS | TARGET_INFO)) | UNICODE;
    let fields: [Vec<u8>; 6] = [
        responses.lm,
        responses.nt,
        unicode(credentials.domain),
        unicode(credentials.user),
        unicode(workstation),
        Vec::new(), // EncryptedRandomSessionKey: no key exchange
    ];
    let mut message =
        Vec::with_capacity(AUTHENTICATE_HEADER + fields.iter().map(Vec::len).sum::<usize>());
    message.extend_from_slice(SIGNATURE);
    message.extend_from_slice(&3u32.to_le_bytes());
    let mut offset = AUTHENTICATE_HEADER;
    for value in &fields {
        let len = u16::try_from(value.len()).map_err(|_| ChallengeError::Truncated)?;
        let at = u32::try_from(offset).map_err(|_| ChallengeError::Truncated)?;
        message.extend_from_slice(&len.to_le_bytes());
        message.extend_from_slice(&len.to_le_bytes());
        message.extend_from_slice(&at.to_le_bytes());
        offset += value.len();
    }
    message.extend_from_slice(&flags.to_le_bytes());
    message.extend_from_slice(&CLIENT_VERSION);
    message.extend_from_slice(&[0; 16]); // MIC, filled below
    for value in &fields {
        message.extend_from_slice(value);
    }
    if with_mic {
        // Without key exchange the exported session key is the session base key (3.2.5.1.2).
        let mic = hmac_md5(
            &responses.session_base_key,
            &[negotiate, challenge_bytes, &message],
        );
        message[MIC_OFFSET..MIC_OFFSET + 16].copy_from_slice(&mic);
    }
    Ok(message)
}

fn push_av(out: &mut Vec<u8>, id: u16, value: &[u8]) {
    out.extend_from_slice(&id.to_le_bytes());
    // Values come from a parsed u16 length or are fixed size.
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
}

/// Now as a Windows FILETIME: 100 ns intervals since 1601-01-01.
pub(crate) fn filetime(now: std::time::SystemTime) -> u64 {
    const UNIX_EPOCH_AS_FILETIME: u64 = 116_444_736_000_000_000;
    let since_unix = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() / 100)
        .unwrap_or(0);
    UNIX_EPOCH_AS_FILETIME.saturating_add(u64::try_from(since_unix).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let text: String = text.split_whitespace().collect();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    // MS-NLMP 4.2.1 common values and 4.2.4 NTLMv2 test values.
    const CREDENTIALS: Credentials<'static> = Credentials {
        domain: "Domain",
        user: "User",
        password: "Password",
    };
    const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    const CLIENT_CHALLENGE: [u8; 8] = [0xaa; 8];

    /// 4.2.4.3: the CHALLENGE_MESSAGE (target name "Server", AV pairs NetBIOS domain name
    /// "Domain" and NetBIOS computer name "Server").
    fn spec_challenge() -> Vec<u8> {
        hex(
            "4e544c4d53535000 02000000 0c000c00 38000000 33828ae2 0123456789abcdef
             0000000000000000 24002400 44000000 060070170000000f
             530065007200760065007200
             02000c00 44006f006d00610069006e00
             01000c00 530065007200760065007200
             00000000",
        )
    }

    #[test]
    fn ntowfv2_is_the_spec_value() {
        // 4.2.4.1.1 NTOWFv2() and LMOWFv2()
        assert_eq!(
            ntowf_v2(&CREDENTIALS).to_vec(),
            hex("0c868a403bfd7a93a3001ef22ef02e3f")
        );
    }

    #[test]
    fn responses_and_session_base_key_are_the_spec_values() {
        let challenge = Challenge::parse(&spec_challenge()).unwrap();
        assert_eq!(challenge.server_challenge, SERVER_CHALLENGE);
        assert_eq!(challenge.flags, 0xe28a_8233);
        let responses = compute_responses(
            &ntowf_v2(&CREDENTIALS),
            &SERVER_CHALLENGE,
            &CLIENT_CHALLENGE,
            &[0; 8],
            &challenge.target_info,
            false,
        );
        // 4.2.4.1.2 Session Base Key
        assert_eq!(
            responses.session_base_key.to_vec(),
            hex("8de40ccadbc14a82f15cb0ad0de95ca3")
        );
        // 4.2.4.2.1 LMv2 Response
        assert_eq!(
            responses.lm,
            hex("86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa")
        );
        // 4.2.4.2.2 NTLMv2 Response: NTProofStr, then temp
        assert_eq!(responses.nt[..16], hex("68cd0ab851e51c96aabc927bebef6a1c"));
        assert_eq!(responses.nt[16..], {
            let mut temp = hex("0101000000000000 0000000000000000 aaaaaaaaaaaaaaaa 00000000");
            temp.extend_from_slice(&challenge.target_info);
            temp.extend_from_slice(&[0; 4]);
            temp
        });
    }

    #[test]
    fn the_authenticate_message_carries_the_spec_responses() {
        let negotiate = negotiate_message();
        let bytes = spec_challenge();
        let challenge = Challenge::parse(&bytes).unwrap();
        let message = authenticate_message(
            &negotiate,
            &bytes,
            &challenge,
            &CREDENTIALS,
            CLIENT_CHALLENGE,
            0,
            "COMPUTER",
        )
        .unwrap();
        assert_eq!(&message[..12], b"NTLMSSP\0\x03\0\0\0");
        assert_eq!(
            field(&message, 12).unwrap(),
            hex("86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa")
        );
        assert_eq!(
            field(&message, 20).unwrap()[..16],
            hex("68cd0ab851e51c96aabc927bebef6a1c")
        );
        assert_eq!(field(&message, 28).unwrap(), unicode("Domain"));
        assert_eq!(field(&message, 36).unwrap(), unicode("User"));
        assert_eq!(field(&message, 44).unwrap(), unicode("COMPUTER"));
        assert_eq!(field(&message, 52).unwrap(), b"");
        let flags = le32(&message, 60).unwrap();
        assert_eq!(flags & 0x4000_0000, 0, "no key exchange is negotiated");
        assert_ne!(flags & UNICODE, 0);
        // No timestamp in the challenge: no MIC.
        assert_eq!(message[MIC_OFFSET..MIC_OFFSET + 16], [0; 16]);
    }

    #[test]
    fn a_server_timestamp_means_a_zero_lm_response_and_a_mic() {
        // The spec challenge with an MsvAvTimestamp before EOL (target info 48 bytes).
        let mut bytes = spec_challenge();
        bytes.truncate(bytes.len() - 4);
        bytes.extend_from_slice(&hex("07000800 0102030405060708 00000000"));
        bytes[40] = 0x30;
        bytes[42] = 0x30;
        let challenge = Challenge::parse(&bytes).unwrap();
        let negotiate = negotiate_message();
        let message = authenticate_message(
            &negotiate,
            &bytes,
            &challenge,
            &CREDENTIALS,
            CLIENT_CHALLENGE,
            0,
            "",
        )
        .unwrap();
        assert_eq!(field(&message, 12).unwrap(), [0; 24]);
        let nt = field(&message, 20).unwrap();
        assert_eq!(
            nt[16 + 8..16 + 16],
            [1, 2, 3, 4, 5, 6, 7, 8],
            "the server's time"
        );
        // MsvAvFlags with the MIC bit is in the client's AV pairs.
        assert!(nt.windows(8).any(|w| w == hex("0600040002000000")));
        // The MIC is HMAC_MD5(session base key, NEGOTIATE || CHALLENGE || AUTHENTICATE with MIC 0).
        let mut zeroed = message.clone();
        zeroed[MIC_OFFSET..MIC_OFFSET + 16].fill(0);
        let proof = &nt[..16];
        let key = hmac_md5(&ntowf_v2(&CREDENTIALS), &[proof]);
        assert_eq!(
            message[MIC_OFFSET..MIC_OFFSET + 16],
            hmac_md5(&key, &[&negotiate, &bytes, &zeroed])
        );
    }

    #[test]
    fn the_negotiate_message_asks_for_ntlmv2_without_key_exchange() {
        let message = negotiate_message();
        assert_eq!(message.len(), 40);
        assert_eq!(&message[..12], b"NTLMSSP\0\x01\0\0\0");
        let flags = le32(&message, 12).unwrap();
        assert_eq!(
            flags & (UNICODE | NTLM | EXTENDED_SESSION_SECURITY),
            UNICODE | NTLM | EXTENDED_SESSION_SECURITY
        );
        assert_eq!(flags & 0x4000_0000, 0);
    }

    #[test]
    fn bad_challenges_are_refused() {
        assert_eq!(
            Challenge::parse(b"NTLMSSP\0"),
            Err(ChallengeError::Truncated)
        );
        let mut bytes = spec_challenge();
        bytes[8] = 3;
        assert_eq!(Challenge::parse(&bytes), Err(ChallengeError::NotAChallenge));
        let mut bytes = spec_challenge();
        bytes[40] = 0;
        assert_eq!(Challenge::parse(&bytes), Err(ChallengeError::NoTargetInfo));
        let mut bytes = spec_challenge();
        bytes[44] = 0xf0; // target info offset past the end
        assert_eq!(Challenge::parse(&bytes), Err(ChallengeError::Truncated));
    }

    #[test]
    fn usernames_split_into_domain_and_user() {
        let c = Credentials::new("CAPFLAB\\enroll", "pw");
        assert_eq!((c.domain, c.user), ("CAPFLAB", "enroll"));
        let c = Credentials::new("enroll@capflab.example", "pw");
        assert_eq!((c.domain, c.user), ("", "enroll@capflab.example"));
        assert!(!format!("{c:?}").contains("pw"));
    }

    /// pyspnego as the acceptor (the AD CS double's): the right password completes the
    /// exchange (its CHALLENGE carries a timestamp, so the MIC is checked too), a wrong one is
    /// refused.
    #[test]
    fn pyspnego_accepts_the_right_password_and_refuses_a_wrong_one() {
        use base64::Engine as _;
        use std::io::{BufRead, BufReader, Write};
        let b64 = base64::engine::general_purpose::STANDARD;
        let dir = std::env::temp_dir().join(format!("capf-ntlm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let users = dir.join("users");
        std::fs::write(&users, "CAPFLAB:enroll:Pa55word\n").unwrap();
        let acceptor = r#"
import base64, sys, spnego
for line in sys.stdin:
    server = spnego.server(protocol="ntlm")
    challenge = server.step(base64.b64decode(line))
    print(base64.b64encode(challenge).decode(), flush=True)
    try:
        server.step(base64.b64decode(sys.stdin.readline()))
        print("OK" if server.complete else "INCOMPLETE", flush=True)
    except Exception as e:
        print("REFUSED " + type(e).__name__, flush=True)
"#;
        let mut child = std::process::Command::new("python3")
            .args(["-c", acceptor])
            .env("NTLM_USER_FILE", &users)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 with pyspnego (installed by `cargo xtask test`)");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut verdict = |password: &str| {
            let negotiate = negotiate_message();
            writeln!(stdin, "{}", b64.encode(&negotiate)).unwrap();
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            let bytes = b64.decode(line.trim()).unwrap();
            let challenge = Challenge::parse(&bytes).unwrap();
            let credentials = Credentials::new("CAPFLAB\\enroll", password);
            let message = authenticate_message(
                &negotiate,
                &bytes,
                &challenge,
                &credentials,
                [7; 8],
                filetime(std::time::SystemTime::now()),
                "CAPF",
            )
            .unwrap();
            writeln!(stdin, "{}", b64.encode(&message)).unwrap();
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            line.trim().to_owned()
        };
        assert_eq!(verdict("Pa55word"), "OK");
        assert!(verdict("wrong").starts_with("REFUSED"));
        drop(stdin);
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn filetime_counts_from_1601() {
        assert_eq!(filetime(std::time::UNIX_EPOCH), 116_444_736_000_000_000);
    }
}

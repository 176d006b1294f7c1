//! CAPABILITY, STARTTLS, LOGIN, AUTHENTICATE PLAIN (with SASL-IR, RFC 4959), ENABLE and ID:
//! what the session offers, and how a user gets in. A failed login is answered after a pause
//! and the same way for an unknown user and a wrong password; passwords never reach the
//! trace or the log.

use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::core::{AString, IString, NString, Tag, Vec1};
use imap_codec::imap_types::response::{Capability, Code, Data};

use super::response::{self, Reply};
use super::session::{Account, Action, Event, Input, Session};
use crate::store::{Mailboxes, StoreError, UserName};

impl Session {
    /// Whether LOGIN and AUTHENTICATE are allowed now.
    fn logins_allowed(&self) -> bool {
        self.tls || !self.config.require_tls
    }

    /// Exactly what works now.
    pub(super) fn capabilities(&self) -> Vec1<Capability<'static>> {
        let mut list = vec![
            Capability::Imap4Rev1,
            Capability::LiteralPlus,
            Capability::SaslIr,
            Capability::Enable,
            Capability::Idle,
            Capability::Namespace,
            Capability::UidPlus,
            Capability::Move,
            Capability::Unselect,
            Capability::try_from("CHILDREN").unwrap_or(Capability::Imap4Rev1),
            Capability::Id,
        ];
        if self.account.is_none() {
            if self.config.starttls && !self.tls {
                list.push(Capability::StartTls);
            }
            if self.logins_allowed() {
                list.push(Capability::Auth(AuthMechanism::Plain));
            } else {
                list.push(Capability::LoginDisabled);
            }
        }
        Vec1::try_from(list).unwrap_or_else(|_| Vec1::from(Capability::Imap4Rev1))
    }

    pub(super) fn capability_code(&self) -> Code<'static> {
        Code::Capability(self.capabilities())
    }

    pub(super) fn capability(&mut self, out: &mut Vec<u8>) -> Reply {
        response::data(out, Data::Capability(self.capabilities()));
        Reply::ok("CAPABILITY completed")
    }

    pub(super) fn starttls(&mut self, tag: &Tag<'_>, out: &mut Vec<u8>) -> Option<Reply> {
        if self.tls {
            return Some(Reply::bad("TLS is already active"));
        }
        if !self.config.starttls {
            return Some(Reply::bad(
                "STARTTLS is not offered here (the server has no certificate; CAPABILITY lists what is)",
            ));
        }
        response::tagged(out, tag, &Reply::ok("Begin TLS negotiation now"));
        // Whatever the client sent after STARTTLS came in the clear: it must not count as
        // commands (CVE-2011-0411).
        self.reader.clear();
        self.action = Some(Action::StartTls);
        None
    }

    pub(super) fn login(
        &mut self,
        tag: &Tag<'_>,
        username: &AString<'_>,
        password: &AString<'_>,
        out: &mut Vec<u8>,
    ) -> Option<Reply> {
        if !self.logins_allowed() {
            return Some(privacy_required("LOGIN"));
        }
        let name = String::from_utf8_lossy(username.as_ref()).into_owned();
        let password = String::from_utf8_lossy(password.as_ref()).into_owned();
        let checked = self.store.authenticate(&name, &password);
        self.complete_login(tag, &name, checked, out)
    }

    pub(super) fn authenticate(
        &mut self,
        tag: &Tag<'static>,
        mechanism: &AuthMechanism<'_>,
        initial_response: Option<&[u8]>,
        out: &mut Vec<u8>,
    ) -> Option<Reply> {
        if !self.logins_allowed() {
            return Some(privacy_required("AUTHENTICATE"));
        }
        if *mechanism != AuthMechanism::Plain {
            return Some(Reply::no(format!(
                "unsupported mechanism {mechanism} (AUTHENTICATE PLAIN works)"
            )));
        }
        match initial_response {
            Some(response) => self.plain(tag, response, out),
            None => {
                response::empty_challenge(out);
                self.input = Input::Authenticate { tag: tag.clone() };
                None
            }
        }
    }

    /// The client's line after AUTHENTICATE PLAIN's `+ `.
    pub(super) fn sasl_response(&mut self, tag: Tag<'static>, line: &[u8], out: &mut Vec<u8>) {
        if line == b"*" {
            self.finish(&tag, Reply::bad("AUTHENTICATE cancelled"), true, out);
            return;
        }
        let reply = match data_encoding::BASE64.decode(line) {
            Ok(decoded) => self.plain(&tag, &decoded, out),
            Err(_) => Some(Reply::bad(
                "AUTHENTICATE PLAIN wants base64 of NUL user NUL password (or * to cancel)",
            )),
        };
        if let Some(reply) = reply {
            self.finish(&tag, reply, true, out);
        }
    }

    /// RFC 4616: `authzid NUL authcid NUL password`.
    fn plain(&mut self, tag: &Tag<'_>, decoded: &[u8], out: &mut Vec<u8>) -> Option<Reply> {
        let mut parts = decoded.splitn(3, |&b| b == 0);
        let (Some(authzid), Some(authcid), Some(password)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Some(Reply::bad(
                "AUTHENTICATE PLAIN wants base64 of NUL user NUL password",
            ));
        };
        let name = String::from_utf8_lossy(authcid).into_owned();
        let checked = if authzid.is_empty() || authzid == authcid {
            let password = String::from_utf8_lossy(password);
            self.store.authenticate(&name, &password)
        } else {
            // Acting for another user is not supported.
            Ok(None)
        };
        self.complete_login(tag, &name, checked, out)
    }

    fn complete_login(
        &mut self,
        tag: &Tag<'_>,
        name: &str,
        checked: Result<Option<UserName>, StoreError>,
        out: &mut Vec<u8>,
    ) -> Option<Reply> {
        let user = match checked {
            Ok(Some(user)) => user,
            Ok(None) => return self.failed_login(tag, name, out),
            Err(error) => return Some(self.store_reply(error, "checking the password")),
        };
        let inbox = match self.store.mailbox(&user) {
            Ok(inbox) => inbox,
            Err(error) => return Some(self.store_reply(error, "opening the mailbox")),
        };
        self.events.push(Event::LoginOk {
            user: user.to_string(),
        });
        let mailboxes = Mailboxes::new(&inbox);
        self.account = Some(Box::new(Account {
            name: user,
            mailboxes,
        }));
        Some(Reply::ok("Logged in").with(self.capability_code()))
    }

    fn failed_login(&mut self, tag: &Tag<'_>, name: &str, out: &mut Vec<u8>) -> Option<Reply> {
        self.failed_logins += 1;
        self.events.push(Event::LoginFailed {
            user: name.chars().take(64).collect(),
        });
        // The same answer for an unknown user and a wrong password: no user enumeration.
        let reply = Reply::no("Invalid user name or password")
            .with(response::other_code("AUTHENTICATIONFAILED"));
        let then_close = self.failed_logins >= self.config.max_failed_logins;
        if then_close {
            response::tagged(out, tag, &reply);
            response::bye(out, "Too many failed logins; closing");
            self.events.push(Event::TooManyFailures {
                failed_logins: self.failed_logins,
                bad_commands: 0,
            });
            self.closing = true;
        } else {
            response::tagged(&mut self.deferred, tag, &reply);
        }
        self.action = Some(Action::Pause {
            delay: self.config.failed_login_delay,
            then_close,
        });
        None
    }

    pub(super) fn enable(&mut self, out: &mut Vec<u8>) -> Reply {
        // Nothing this server offers needs enabling.
        response::data(
            out,
            Data::Enabled {
                capabilities: Vec::new(),
            },
        );
        Reply::ok("ENABLE completed (nothing to enable)")
    }

    pub(super) fn id(&mut self, out: &mut Vec<u8>) -> Reply {
        let field = |key: &'static str, value: &'static str| {
            Some((
                IString::try_from(key).ok()?,
                NString(Some(IString::try_from(value).ok()?)),
            ))
        };
        let parameters: Vec<_> = [
            field("name", "mailtool"),
            field("version", env!("CARGO_PKG_VERSION")),
        ]
        .into_iter()
        .flatten()
        .collect();
        response::data(
            out,
            Data::Id {
                parameters: Some(parameters),
            },
        );
        Reply::ok("ID completed")
    }
}

fn privacy_required(command: &str) -> Reply {
    Reply::no(format!(
        "{command} needs an encrypted connection: STARTTLS first"
    ))
    .with(response::other_code("PRIVACYREQUIRED"))
}

//! ACL: dynkv has one user, `default`, with every permission and the
//! `--requirepass` password. WHOAMI, LIST, USERS and HELP describe it the
//! way Redis does, so tools that ask get the answer they expect; commands
//! that would change users say plainly that there are no others.

use super::{CmdResult, wrong_arity};
use crate::resp::reply::Reply;
use crate::resp::session::ServerState;
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Runs `ACL <subcommand> ...`.
pub fn run(server: &ServerState, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let exactly = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(wrong_arity(&format!("acl|{sub}")))
        }
    };
    match sub.as_str() {
        "whoami" => {
            exactly(2)?;
            Ok(Reply::bulk("default"))
        }
        "list" => {
            exactly(2)?;
            Ok(Reply::Array(vec![Reply::bulk(default_user_rule(
                server.requirepass.as_deref(),
            ))]))
        }
        "users" => {
            exactly(2)?;
            Ok(Reply::Array(vec![Reply::bulk("default")]))
        }
        "help" => Ok(Reply::Array(
            [
                "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "WHOAMI",
                "    Return the current connection username.",
                "LIST",
                "    Show users details in config file format.",
                "USERS",
                "    List all the registered usernames.",
                "HELP",
                "    Print this help.",
                "dynkv has only the default user; its password is --requirepass.",
            ]
            .iter()
            .map(|s| Reply::Simple((*s).into()))
            .collect(),
        )),
        "cat" | "deluser" | "dryrun" | "genpass" | "getuser" | "load" | "log" | "save"
        | "setuser" => Err(Reply::err(format!(
            "ACL {} is not supported: dynkv has only the default user (password: --requirepass)",
            sub.to_ascii_uppercase()
        ))),
        _ => Err(Reply::err(format!(
            "unknown subcommand '{}'. Try ACL HELP.",
            String::from_utf8_lossy(&args[1])
        ))),
    }
}

/// Redis's ACL LIST line for the default user: `nopass`, or the SHA-256 of
/// the password after `#`.
pub fn default_user_rule(requirepass: Option<&str>) -> String {
    let pass = match requirepass {
        None => "nopass".to_string(),
        Some(pw) => format!("#{}", hex::encode(Sha256::digest(pw.as_bytes()))),
    };
    format!("user default on {pass} ~* &* +@all")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_user_rule_matches_redis() {
        assert_eq!(
            default_user_rule(None),
            "user default on nopass ~* &* +@all"
        );
        // What redis-server 7 prints after CONFIG SET requirepass pw.
        assert_eq!(
            default_user_rule(Some("pw")),
            "user default on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~* &* +@all"
        );
    }
}

"""detect-secrets' rules, copied from its release 1.5.0: the token plugins' patterns, the keyword plugin's patterns by
file type, the file types, and the heuristics it filters keyword hits with. secrets.py applies them.

detect-secrets is Yelp's (https://github.com/Yelp/detect-secrets), Copyright 2017-2018 Yelp Inc., under the Apache
License 2.0 (http://www.apache.org/licenses/LICENSE-2.0); what is below is its code and patterns, rearranged, with
nothing added. Why a copy and not an import: importing any part of detect-secrets imports `requests` (the plugins'
base class verifies secrets online), whose urllib3 binds an IPv6 socket at import to probe for IPv6, and the
sidecar opens no socket. tests/index/test_secret_rules.py checks the copy against the package (a dev dependency).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Plugin:
    name: str  # the detect-secrets class
    secret_type: str
    denylist: tuple[re.Pattern[str], ...]


def _assignment(prefix_regex: str, secret_keyword_regex: str, secret_regex: str) -> re.Pattern[str]:
    """RegexBasedDetector.build_assignment_regex: <prefix>(-|_|)<keyword> <assignment> <secret>, quotes optional."""
    begin = r"(?:(?<=\W)|(?<=^))"
    opt_quote = r'(?:"|\'|)'
    opt_dash_underscore = r"(?:_|-|)"
    opt_space = r"(?: *)"
    assignment = r"(?:=|:|:=|=>| +|::)"
    opt_open, opt_close = r"(?:\[|)", r"(?:\]|)"  # square brackets
    key = (opt_open, opt_quote, prefix_regex, opt_dash_underscore, secret_keyword_regex, opt_quote, opt_close)
    value = (opt_space, assignment, opt_space, opt_quote, secret_regex, opt_quote)
    return re.compile(begin + "".join(key) + "".join(value), flags=re.IGNORECASE)


_CL_KEY_OR_PASS = r"(?:api|)(?:key|pwd|pw|password|pass|token)"
_CL_URL = r"(?:https?\:\/\/)[\w\-]+\:{secret}\@[\w\-]+\.cloudant\.com"
_IBM_CLOUD_IAM = r"(?:ibm(?:_|-|)cloud(?:_|-|)iam|cloud(?:_|-|)iam|ibm(?:_|-|)cloud|ibm(?:_|-|)iam|ibm|iam|cloud|)"
_IBM_CLOUD_IAM += r"(?:_|-|)(?:api|)"
_KEY_OR_PASS = r"(?:key|pwd|password|pass|token)"
_URL_DELIMITERS = re.escape(":/?#[]@" + "!$&'()*+,;=")  # basic_auth: RFC 3986's reserved and sub-delimiters
_PRIVATE_KEYS = (
    r"BEGIN DSA PRIVATE KEY",
    r"BEGIN EC PRIVATE KEY",
    r"BEGIN OPENSSH PRIVATE KEY",
    r"BEGIN PGP PRIVATE KEY BLOCK",
    r"BEGIN PRIVATE KEY",
    r"BEGIN RSA PRIVATE KEY",
    r"BEGIN SSH2 ENCRYPTED PRIVATE KEY",
    r"PuTTY-User-Key-File-2",
)

# The token plugins secrets.py uses (all but the high-entropy strings, the keyword plugin and the public IPs).
PLUGINS = (
    Plugin(
        "AWSKeyDetector",
        "AWS Access Key",
        (
            re.compile(r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}"),
            re.compile(
                r"aws.{0,20}?(?:key|pwd|pw|password|pass|token).{0,20}?[\'\"]([0-9a-zA-Z/+]{40})[\'\"]",
                flags=re.IGNORECASE,
            ),
        ),
    ),
    Plugin(
        "ArtifactoryDetector",
        "Artifactory Credentials",
        (
            re.compile(r'(?:\s|=|:|"|^)AKC[a-zA-Z0-9]{10,}(?:\s|"|$)'),
            re.compile(r'(?:\s|=|:|"|^)AP[\dABCDEF][a-zA-Z0-9]{8,}(?:\s|"|$)'),
        ),
    ),
    Plugin(
        "AzureStorageKeyDetector", "Azure Storage Account access key", (re.compile(r"AccountKey=[a-zA-Z0-9+\/=]{88}"),)
    ),
    Plugin(
        "BasicAuthDetector",
        "Basic Auth Credentials",
        (re.compile(r"://[^{}\s]+:([^{}\s]+)@".format(_URL_DELIMITERS, _URL_DELIMITERS)),),  # noqa: UP032 (as upstream)
    ),
    Plugin(
        "CloudantDetector",
        "Cloudant Credentials",
        (
            _assignment(r"(?:cloudant|cl|clou)", _CL_KEY_OR_PASS, r"([0-9a-f]{64})"),
            _assignment(r"(?:cloudant|cl|clou)", _CL_KEY_OR_PASS, r"([a-z]{24})"),
            re.compile(_CL_URL.format(secret=r"([0-9a-f]{64})"), flags=re.IGNORECASE),
            re.compile(_CL_URL.format(secret=r"([a-z]{24})"), flags=re.IGNORECASE),
        ),
    ),
    Plugin(
        "DiscordBotTokenDetector",
        "Discord Bot Token",
        (re.compile(r"[MNO][a-zA-Z\d_-]{23,25}\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}"),),
    ),
    Plugin("GitHubTokenDetector", "GitHub Token", (re.compile(r"(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}"),)),
    Plugin(
        "GitLabTokenDetector",
        "GitLab Token",
        (
            re.compile(r"(glpat|gldt|glft|glsoat|glrt)-[A-Za-z0-9_\-]{20,50}(?!\w)"),
            re.compile(r"GR1348941[A-Za-z0-9_\-]{20,50}(?!\w)"),
            re.compile(r"glcbt-([0-9a-fA-F]{2}_)?[A-Za-z0-9_\-]{20,50}(?!\w)"),
            re.compile(r"glimt-[A-Za-z0-9_\-]{25}(?!\w)"),
            re.compile(r"glptt-[A-Za-z0-9_\-]{40}(?!\w)"),
            re.compile(r"glagent-[A-Za-z0-9_\-]{50,1024}(?!\w)"),
            re.compile(r"gloas-[A-Za-z0-9_\-]{64}(?!\w)"),
        ),
    ),
    Plugin(
        "IbmCloudIamDetector",
        "IBM Cloud IAM Key",
        (_assignment(_IBM_CLOUD_IAM, _KEY_OR_PASS, r"([a-zA-Z0-9_\-]{44}(?![a-zA-Z0-9_\-]))"),),
    ),
    Plugin(
        "IbmCosHmacDetector",
        "IBM COS HMAC Credentials",
        (
            _assignment(
                r"(?:(?:ibm)?[-_]?cos[-_]?(?:hmac)?|)",
                r"(?:secret[-_]?(?:access)?[-_]?key)",
                r"([a-f0-9]{48}(?![a-f0-9]))",
            ),
        ),
    ),
    Plugin(
        "JwtTokenDetector",
        "JSON Web Token",
        (re.compile(r"eyJ[A-Za-z0-9-_=]+\.[A-Za-z0-9-_=]+\.?[A-Za-z0-9-_.+/=]*?"),),
    ),
    Plugin("MailchimpDetector", "Mailchimp Access Key", (re.compile(r"[0-9a-z]{32}-us[0-9]{1,2}"),)),
    Plugin("NpmDetector", "NPM tokens", (re.compile(r"\/\/.+\/:_authToken=\s*((npm_.+)|([A-Fa-f0-9-]{36})).*"),)),
    Plugin("OpenAIDetector", "OpenAI Token", (re.compile(r"sk-[A-Za-z0-9-_]*[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}"),)),
    Plugin("PrivateKeyDetector", "Private Key", tuple(re.compile(p) for p in _PRIVATE_KEYS)),
    Plugin(
        "PypiTokenDetector",
        "PyPI Token",
        (
            re.compile(r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9-_]{70,}"),
            re.compile(r"pypi-AgENdGVzdC5weXBpLm9yZw[A-Za-z0-9-_]{70,}"),
        ),
    ),
    Plugin("SendGridDetector", "SendGrid API Key", (re.compile(r"SG\.[a-zA-Z0-9_-]{22}\.[a-zA-Z0-9_-]{43}"),)),
    Plugin(
        "SlackDetector",
        "Slack Token",
        (
            re.compile(r"xox(?:a|b|p|o|s|r)-(?:\d+-)+[a-z0-9]+", flags=re.IGNORECASE),
            re.compile(
                r"https://hooks\.slack\.com/services/T[a-zA-Z0-9_]+/B[a-zA-Z0-9_]+/[a-zA-Z0-9_]+",
                flags=re.IGNORECASE | re.VERBOSE,
            ),
        ),
    ),
    Plugin(
        "SoftlayerDetector",
        "SoftLayer Credentials",
        (
            _assignment(r"(?:softlayer|sl)(?:_|-|)(?:api|)", _KEY_OR_PASS, r"([a-z0-9]{64})"),
            re.compile(r"(?:http|https)://api.softlayer.com/soap/(?:v3|v3.1)/([a-z0-9]{64})", flags=re.IGNORECASE),
        ),
    ),
    Plugin("SquareOAuthDetector", "Square OAuth Secret", (re.compile(r"sq0csp-[0-9A-Za-z\\\-_]{43}"),)),
    Plugin("StripeDetector", "Stripe Access Key", (re.compile(r"(?:r|s)k_live_[0-9a-zA-Z]{24}"),)),
    Plugin("TelegramBotTokenDetector", "Telegram Bot Token", (re.compile(r"\d{8,10}:[0-9A-Za-z_-]{35}"),)),
    Plugin("TwilioKeyDetector", "Twilio API Key", (re.compile(r"AC[a-z0-9]{32}"), re.compile(r"SK[a-z0-9]{32}"))),
)


# ---- the keyword plugin (detect_secrets/plugins/keyword.py) -------------------------------------------------------

KEYWORD_SECRET_TYPE = "Secret Keyword"


class FileType(Enum):
    """detect_secrets.util.filetype.FileType."""

    CLS = 0
    EXAMPLE = 1
    GO = 2
    JAVA = 3
    JAVASCRIPT = 4
    PHP = 5
    OBJECTIVE_C = 6
    PYTHON = 7
    SWIFT = 8
    TERRAFORM = 9
    YAML = 10
    C_SHARP = 11
    C = 12
    C_PLUS_PLUS = 13
    CONFIG = 14
    INI = 15
    PROPERTIES = 16
    TOML = 17
    OTHER = 18


FILE_TYPES = {
    ".cls": FileType.CLS,
    ".example": FileType.EXAMPLE,
    ".eyaml": FileType.YAML,
    ".go": FileType.GO,
    ".java": FileType.JAVA,
    ".js": FileType.JAVASCRIPT,
    ".m": FileType.OBJECTIVE_C,
    ".php": FileType.PHP,
    ".py": FileType.PYTHON,
    ".pyi": FileType.PYTHON,
    ".swift": FileType.SWIFT,
    ".tf": FileType.TERRAFORM,
    ".yaml": FileType.YAML,
    ".yml": FileType.YAML,
    ".cs": FileType.C_SHARP,
    ".c": FileType.C,
    ".cpp": FileType.C_PLUS_PLUS,
    ".cnf": FileType.CONFIG,
    ".conf": FileType.CONFIG,
    ".cfg": FileType.CONFIG,
    ".cf": FileType.CONFIG,
    ".ini": FileType.INI,
    ".properties": FileType.PROPERTIES,
    ".toml": FileType.TOML,
}


def file_type(suffix: str) -> FileType:
    """determine_file_type, by the file name's suffix (os.path.splitext's, case kept)."""
    return FILE_TYPES.get(suffix, FileType.OTHER)


# All values here should be lowercase (upstream's note).
_DENYLIST = (
    "api_?key",
    "auth_?key",
    "service_?key",
    "account_?key",
    "db_?key",
    "database_?key",
    "priv_?key",
    "private_?key",
    "client_?key",
    "db_?pass",
    "database_?pass",
    "key_?pass",
    "password",
    "passwd",
    "pwd",
    "secret",
    "contraseña",
    "contrasena",
)
_CLOSING = r'[]\'"]{0,2}'  # includes ], ', " as closing
_AFFIX = r"\w*"
_KEYWORD = r"({denylist}){suffix}".format(denylist=r"|".join(_DENYLIST), suffix=_AFFIX)  # noqa: UP032
_KEYWORD_WITH_PREFIX = r"{prefix}{denylist}".format(prefix=_AFFIX, denylist=_KEYWORD)  # noqa: UP032
_WS = r"\s*"
_NON_WS = r"[^\s]{0,50}?"
_QUOTE = r'[\'"`]'
_SECRET = r"(?=[^\v\'\"]*)(?=\w+)[^\v\'\"]*[^\v,\'\"`]"
_SQUARE_BRACKETS = r"(\[[0-9]*\])"
_I = re.IGNORECASE

FOLLOWED_BY_COLON_EQUAL_SIGNS = re.compile(  # my_password := "bar" or my_password := bar
    rf"{_KEYWORD}({_CLOSING})?{_WS}:={_WS}({_QUOTE}?)({_SECRET})(\3)", flags=_I
)
FOLLOWED_BY_COLON = re.compile(rf"{_KEYWORD}({_CLOSING})?:{_WS}({_QUOTE}?)({_SECRET})(\3)", flags=_I)  # api_key: foo
FOLLOWED_BY_COLON_QUOTES_REQUIRED = re.compile(  # api_key: "foo"
    rf"{_KEYWORD}({_CLOSING})?:({_WS})({_QUOTE})({_SECRET})(\4)", flags=_I
)
# my_password = "bar", my_password = @"bar", my_password[] = "bar";, char my_password[25] = "bar";
FOLLOWED_BY_EQUAL_SIGNS_OPTIONAL_BRACKETS_OPTIONAL_AT_SIGN_QUOTES_REQUIRED = re.compile(
    rf'{_KEYWORD}({_SQUARE_BRACKETS})?{_WS}[!=]{{1,2}}{_WS}(@)?(")({_SECRET})(\5)', flags=_I
)
# std::string secret("bar");, secret.assign("bar",17);
FOLLOWED_BY_OPTIONAL_ASSIGN_QUOTES_REQUIRED = re.compile(rf'{_KEYWORD}(.assign)?\((")({_SECRET})(\3)')
# my_password = bar, my_password == "bar", != "bar", === "bar", !== "bar" (or in single quotes)
FOLLOWED_BY_EQUAL_SIGNS = re.compile(
    rf"{_KEYWORD}({_CLOSING})?{_WS}(={{1,3}}|!==?){_WS}({_QUOTE}?)({_SECRET})(\4)", flags=_I
)
FOLLOWED_BY_EQUAL_SIGNS_QUOTES_REQUIRED = re.compile(
    rf"{_KEYWORD}({_CLOSING})?{_WS}(={{1,3}}|!==?){_WS}({_QUOTE})({_SECRET})(\4)", flags=_I
)
# "bar" == my_password, "bar" != my_password, === and !== (or in single quotes)
PRECEDED_BY_EQUAL_COMPARISON_SIGNS_QUOTES_REQUIRED = re.compile(
    rf"({_QUOTE})({_SECRET})(\1){_WS}[!=]{{2,3}}{_WS}{_KEYWORD_WITH_PREFIX}"
)
FOLLOWED_BY_QUOTES_AND_SEMICOLON = re.compile(  # private_key "something";
    rf"{_KEYWORD}{_NON_WS}{_WS}({_QUOTE})({_SECRET})(\2);", flags=_I
)
FOLLOWED_BY_ARROW_FUNCTION_SIGN_QUOTES_REQUIRED = re.compile(  # my_password => "bar" or my_password => bar
    rf"{_KEYWORD}({_CLOSING})?{_WS}=>?{_WS}({_QUOTE})({_SECRET})(\3)", flags=_I
)

# Each table: pattern -> the group that holds the secret.
CONFIG_DENYLIST_REGEX_TO_GROUP = {
    FOLLOWED_BY_COLON: 4,
    PRECEDED_BY_EQUAL_COMPARISON_SIGNS_QUOTES_REQUIRED: 2,
    FOLLOWED_BY_EQUAL_SIGNS: 5,
    FOLLOWED_BY_QUOTES_AND_SEMICOLON: 3,
}
GOLANG_DENYLIST_REGEX_TO_GROUP = {
    FOLLOWED_BY_COLON_EQUAL_SIGNS: 4,
    PRECEDED_BY_EQUAL_COMPARISON_SIGNS_QUOTES_REQUIRED: 2,
    FOLLOWED_BY_EQUAL_SIGNS: 5,
    FOLLOWED_BY_QUOTES_AND_SEMICOLON: 3,
}
COMMON_C_DENYLIST_REGEX_TO_GROUP = {FOLLOWED_BY_EQUAL_SIGNS_OPTIONAL_BRACKETS_OPTIONAL_AT_SIGN_QUOTES_REQUIRED: 6}
C_PLUS_PLUS_REGEX_TO_GROUP = {
    FOLLOWED_BY_OPTIONAL_ASSIGN_QUOTES_REQUIRED: 4,
    FOLLOWED_BY_EQUAL_SIGNS_QUOTES_REQUIRED: 5,
}
QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP = {
    FOLLOWED_BY_COLON_QUOTES_REQUIRED: 5,
    PRECEDED_BY_EQUAL_COMPARISON_SIGNS_QUOTES_REQUIRED: 2,
    FOLLOWED_BY_EQUAL_SIGNS_QUOTES_REQUIRED: 5,
    FOLLOWED_BY_QUOTES_AND_SEMICOLON: 3,
    FOLLOWED_BY_ARROW_FUNCTION_SIGN_QUOTES_REQUIRED: 4,
}
REGEX_BY_FILETYPE = {
    FileType.GO: GOLANG_DENYLIST_REGEX_TO_GROUP,
    FileType.OBJECTIVE_C: COMMON_C_DENYLIST_REGEX_TO_GROUP,
    FileType.C_SHARP: COMMON_C_DENYLIST_REGEX_TO_GROUP,
    FileType.C: COMMON_C_DENYLIST_REGEX_TO_GROUP,
    FileType.C_PLUS_PLUS: C_PLUS_PLUS_REGEX_TO_GROUP,
    FileType.CLS: QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
    FileType.JAVA: QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
    FileType.JAVASCRIPT: QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
    FileType.PYTHON: QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
    FileType.SWIFT: QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
    FileType.TERRAFORM: QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
    FileType.YAML: CONFIG_DENYLIST_REGEX_TO_GROUP,
    FileType.CONFIG: CONFIG_DENYLIST_REGEX_TO_GROUP,
    FileType.INI: CONFIG_DENYLIST_REGEX_TO_GROUP,
    FileType.PROPERTIES: CONFIG_DENYLIST_REGEX_TO_GROUP,
    FileType.TOML: CONFIG_DENYLIST_REGEX_TO_GROUP,
}


def keyword_table(filetype: FileType) -> dict[re.Pattern[str], int]:
    """The keyword patterns for a file type (KeywordDetector.analyze_line's choice)."""
    return REGEX_BY_FILETYPE.get(filetype, QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)


# ---- the heuristic filters (detect_secrets/filters/heuristic.py) ---------------------------------------------------

_SEQUENCES = (
    string.ascii_uppercase + string.ascii_uppercase + string.digits + "+/",  # base64 letters first
    string.digits + string.ascii_uppercase + string.ascii_uppercase + "+/",  # base64 numbers first
    (string.digits + string.ascii_uppercase) * 2,  # alphanumeric sequences
    string.digits * 2,  # any number sequence
    string.hexdigits.upper() + string.hexdigits.upper(),
    string.ascii_uppercase + "=/",
)
_UUID = re.compile(r"[a-f0-9]{8}\-[a-f0-9]{4}\-[a-f0-9]{4}\-[a-f0-9]{4}\-[a-f0-9]{12}", re.IGNORECASE)
# ^(id|myid|userid): common id names with no prefix; _id: with one; s?: plural; then a character not a letter/digit.
_ID = re.compile(r"(^(id|myid|userid)|_id)s?[^a-z0-9]", re.IGNORECASE)
# Something, an assignment or comparison (:=, =, ==, ===, !=, !==), a name, an indirect reference ([...], (...)).
_INDIRECT_REFERENCE = re.compile(r"([^\v=!:]*)\s*(:=?|[!=]{1,3})\s*([\w.-]+[\[\(][^\v]*[\]\)])")


def is_sequential_string(secret: str) -> bool:
    uppercase = secret.upper()
    return any(uppercase in sequence for sequence in _SEQUENCES)


def is_potential_uuid(secret: str) -> bool:
    return bool(_UUID.search(secret))


def is_likely_id_string(secret: str, line: str) -> bool:
    """(Upstream also takes the plugin: for the keyword plugin, the one these filters serve, it changes nothing.)"""
    try:
        index = line.index(secret)
    except ValueError:
        return False
    return bool(_ID.search(line, pos=0, endpos=index))


def is_templated_secret(secret: str) -> bool:
    """{secret}, <secret> or ${secret}; a one-character secret too (upstream: an IndexError means a weak one)."""
    try:
        return (
            (secret[0] == "{" and secret[-1] == "}")
            or (secret[0] == "<" and secret[-1] == ">")
            or (secret[0] == "$" and secret[1] == "{" and secret[-1] == "}")
        )
    except IndexError:
        return True


def is_prefixed_with_dollar_sign(secret: str) -> bool:
    return bool(secret) and secret[0] == "$"


def is_indirect_reference(line: str) -> bool:
    """`secret = get_secret_key()`, `secret = request.headers['apikey']` (lines over 1000 characters are not tried:
    upstream's guard against the pattern's backtracking)."""
    return len(line) <= 1000 and bool(_INDIRECT_REFERENCE.search(line))


def is_not_alphanumeric_string(secret: str) -> bool:
    """No letter at all (`*****`)."""
    return not bool(set(string.ascii_letters) & set(secret))

"""The harness's own read-only Python snippets, run on hosts with ``python3 -c``.

Each snippet is fixed text (the allow-list matches it exactly) and takes only plain
arguments. They read metadata and sockets; none writes anything or imports heavy packages
(reading transformers' version must not import transformers: it imports torch).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Applied with fullmatch ("$" would accept a trailing newline).
_PATH = re.compile(r"/[A-Za-z0-9._/@+-]*")
_HOSTPORT = re.compile(r"[A-Za-z0-9.:_\[\]-]+:[0-9]{1,5}")
_URL = re.compile(r"http://[A-Za-z0-9.:_\[\]-]+(/[A-Za-z0-9._~/%-]*)?")
_SECONDS = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3})?")
_ACCOUNT = re.compile(r"[a-z_][a-z0-9_.-]*")


@dataclass(frozen=True)
class Script:
    name: str
    text: str
    arguments_valid: Callable[[Sequence[str]], bool]


# Prints a JSON object {dist_name_lower: version} for the site-packages under each venv.
PACKAGE_VERSIONS = Script(
    "package-versions",
    """import glob,json,os,sys
import importlib.metadata as m
out={}
for venv in sys.argv[1:]:
    try:
        os.stat(venv+'/lib')
    except FileNotFoundError:
        out[venv]={'site_packages':[],'packages':{},'missing':True}; continue
    except OSError as exc:
        out[venv]={'site_packages':[],'packages':{},'error':type(exc).__name__+': '+str(exc)}; continue
    paths=glob.glob(venv+'/lib/python3*/site-packages')
    found={}
    for d in m.distributions(path=paths):
        name=(d.metadata['Name'] or '').lower()
        if name: found[name]=d.version
    out[venv]={'site_packages':paths,'packages':found}
print(json.dumps(out))""",
    lambda args: bool(args) and all(_PATH.fullmatch(arg) for arg in args),
)

# Lists the models present in each HF hub cache: {cache: {"exists": bool, "models": {...}}}.
# A model counts as present when a snapshot holds config.json (what from_pretrained needs).
HF_CACHE_LISTING = Script(
    "hf-cache-listing",
    """import json,os,sys
out={}
for cache in sys.argv[1:]:
    entry={'exists':False,'models':{}}
    try:
        os.stat(cache); entry['exists']=os.path.isdir(cache)
    except FileNotFoundError:
        pass
    except OSError as exc:
        entry['error']=type(exc).__name__+': '+str(exc)
    if entry['exists']:
        try:
            names=sorted(os.listdir(cache))
        except OSError as exc:
            entry['error']=str(exc); names=[]
        for name in names:
            if not name.startswith('models--'): continue
            model=name[len('models--'):].replace('--','/')
            snaps=os.path.join(cache,name,'snapshots')
            complete=False
            if os.path.isdir(snaps):
                complete=any(os.path.isfile(os.path.join(snaps,s,'config.json')) for s in os.listdir(snaps))
            entry['models'][model]=complete
    out[cache]=entry
print(json.dumps(out))""",
    lambda args: bool(args) and all(_PATH.fullmatch(arg) for arg in args),
)

# One GET per URL or one TCP connect per host:port, from inside the host.
# Prints {target: {"ok": bool, "status": int|None, "body": str, "error": str|None, "ms": float}}.
# Bounded like the LAN probes: redirects are reported, never followed (a 3xx is the answer);
# at most 2 KiB of a body is read; every probe runs in a daemon thread and the snippet
# prints what it has at one overall deadline (timeout + 1 s) and exits, so one slow
# endpoint is reported as such instead of holding the whole batch until the command timeout.
IN_HOST_PROBE = Script(
    "in-host-probe",
    """import json,socket,sys,threading,time,urllib.request,urllib.error
timeout=float(sys.argv[1]); out={}; lock=threading.Lock()
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self,*args,**kwargs): return None
opener=urllib.request.build_opener(NoRedirect)
def probe(target):
    t0=time.monotonic(); r={'ok':False,'status':None,'body':'','error':None}
    try:
        if target.startswith('http://'):
            req=urllib.request.Request(target,method='GET')
            try:
                with opener.open(req,timeout=timeout) as resp:
                    r['status']=resp.status; r['body']=resp.read(2048).decode('utf-8','replace')
            except urllib.error.HTTPError as exc:
                r['status']=exc.code; r['body']=exc.read(2048).decode('utf-8','replace')
            r['ok']=True
        else:
            host,_,port=target.rpartition(':')
            with socket.create_connection((host.strip('[]'),int(port)),timeout=timeout):
                r['ok']=True
    except Exception as exc:
        r['error']=type(exc).__name__+': '+str(exc)
    r['ms']=round((time.monotonic()-t0)*1000,1)
    with lock: out[target]=r
deadline=time.monotonic()+timeout+1
threads=[threading.Thread(target=probe,args=(t,),daemon=True) for t in sys.argv[2:]]
for t in threads: t.start()
for t in threads: t.join(max(0.0,deadline-time.monotonic()))
late={'ok':False,'status':None,'body':'','ms':round((timeout+1)*1000,1)}
late['error']='deadline: no complete answer within %gs'%(timeout+1)
with lock:
    for t in sys.argv[2:]: out.setdefault(t,dict(late))
    sys.stdout.write(json.dumps(out)+chr(10)); sys.stdout.flush()
""",
    lambda args: (
        len(args) >= 2
        and _SECONDS.fullmatch(args[0]) is not None
        and all(len(arg) < 300 and (_URL.fullmatch(arg) or _HOSTPORT.fullmatch(arg)) for arg in args[1:])
    ),
)

# Accounts: {user: {"home": ..., "uid": ...} or null} for the users asked, plus every listed
# account's name by uid ('') and home and uid by name ('~'). getent is not on macOS; pwd is.
# The names asked are looked up one by one with getpwnam, which asks every source nsswitch.conf
# lists for passwd (getpwnam(3)); the listing is getpwent(3), which a directory service need not
# answer: SSSD does not enumerate unless told to (sssd.conf(5): "enumerate ... Default: FALSE"),
# nor do nss_ldap/nslcd setups that turn enumeration off. So the listing only spares a lookup:
# an account the checks need and the listing lacks is asked by name (ACCOUNTS_BY_NAME).
# Looks the names given up one by one (getpwnam), into out; both account scripts start so.
_LOOKUP_BY_NAME = """import json,pwd,sys
out={}
for user in sys.argv[1:]:
    try:
        entry=pwd.getpwnam(user); out[user]={'home':entry.pw_dir,'uid':entry.pw_uid}
    except KeyError: out[user]=None
"""

USER_HOMES = Script(
    "user-homes",
    _LOOKUP_BY_NAME
    + """# Names of every account by uid, so a process is named by its real owner in evidence.
out['']={str(e.pw_uid):e.pw_name for e in pwd.getpwall()}
# Every account's home and uid, so that a unit's User= the site does not name is known too.
out['~']={e.pw_name:{'home':e.pw_dir,'uid':e.pw_uid} for e in pwd.getpwall()}
print(json.dumps(out))""",
    lambda args: bool(args) and all(_ACCOUNT.fullmatch(arg) for arg in args),
)

# The same lookup by name alone, {user: {"home": ..., "uid": ...} or null}: for the accounts
# the units name (User=, UserName) that round one's listing did not hold. Python's
# pwd.getpwnam raises KeyError whenever getpwnam(3) returns NULL, so null means that no NSS
# source answered for the name (not found, or a source that could not be reached).
# USER_HOMES without its listing: the hosts that need this round are those whose accounts live
# in a directory, where enumerating every account is what to avoid.
ACCOUNTS_BY_NAME = Script(
    "accounts-by-name",
    _LOOKUP_BY_NAME + "print(json.dumps(out))",
    lambda args: bool(args) and all(_ACCOUNT.fullmatch(arg) for arg in args),
)

ALL_SCRIPTS = (PACKAGE_VERSIONS, HF_CACHE_LISTING, IN_HOST_PROBE, USER_HOMES, ACCOUNTS_BY_NAME)


def by_text(text: str) -> Script | None:
    return next((script for script in ALL_SCRIPTS if script.text == text), None)

"""Log in to the scenario's vsftpd the ways a client would and check each answer."""

import ftplib
import io
import os
import ssl
import sys

HOST, PORT = "127.0.0.1", int(os.environ["FTP_PORT"])
USER, PASSWORD = os.environ["FTP_USER"], os.environ["FTP_PASSWORD"]
CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE  # the scenario's certificate is self-signed
failures = []


def refused(user, password, tls):
    ftp = ftplib.FTP_TLS(context=CTX) if tls else ftplib.FTP()
    ftp.connect(HOST, PORT, timeout=10)
    try:
        ftp.login(user, password)
    except ftplib.error_perm as exc:
        return str(exc)
    finally:
        ftp.close()
    return None


def expect_refused(what, user, password, tls=True):
    answer = refused(user, password, tls)
    if answer is None:
        failures.append(f"{what}: login was accepted")
    else:
        print(f"ok: {what} refused ({answer})")


expect_refused("anonymous login", "anonymous", "guest@example.org", tls=False)
expect_refused("anonymous login over TLS", "anonymous", "guest@example.org")
expect_refused("login without TLS", USER, PASSWORD, tls=False)
expect_refused("wrong password", USER, PASSWORD + "x")
expect_refused("root (not in the allowed list)", "root", PASSWORD)

ftp = ftplib.FTP_TLS(context=CTX)
ftp.connect(HOST, PORT, timeout=10)
ftp.login(USER, PASSWORD)
ftp.prot_p()
if ftp.pwd() != "/":
    failures.append(f"chroot: pwd is {ftp.pwd()!r}, not '/'")
ftp.cwd("..")
if ftp.pwd() != "/":
    failures.append(f"chroot: could leave the chroot to {ftp.pwd()!r}")
if "files" not in ftp.nlst():
    failures.append(f"upload directory missing: {ftp.nlst()}")
try:
    ftp.storbinary("STOR /outside.txt", io.BytesIO(b"x"))
    failures.append("the chroot itself is writable")
except ftplib.error_perm as exc:
    print(f"ok: chroot root not writable ({exc})")
payload = b"molecule ftp round trip\n"
ftp.storbinary("STOR /files/roundtrip.txt", io.BytesIO(payload))
got = io.BytesIO()
ftp.retrbinary("RETR /files/roundtrip.txt", got.write)
if got.getvalue() != payload:
    failures.append("upload and download differ")
ftp.delete("/files/roundtrip.txt")
ftp.quit()
print("ok: TLS login, chroot, upload, download, delete")

if failures:
    print("FAILED: " + "; ".join(failures))
    sys.exit(1)
print("ftp checks passed")

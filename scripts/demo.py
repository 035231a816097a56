"""`make demo`: the whole GitOps story, end to end, against the bundled Proxmox API double.

Starts the double with the sample cluster, points the PROXMOX_* variables at
it, and runs what a user runs from the repo root: the inventory, then the
declarations in state/ validated, planned (check mode + diff), applied, applied
again (nothing changes), the drift table, and the inventory grouped by role.
The seeds' case: AI-agent is live and declared, but the old state DB only
knows `test` and `test-2`. Everything it writes stays under .double/: a
scratch state DB (never the repo's state/*.db) and the Terraform vars file
(never the committed terraform/datastores.auto.tfvars.json).
"""

import json
import os
import sqlite3
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.seed_db import legacy_db  # noqa: E402  (the seeds' DB, shared with the tests)

BIN = os.path.dirname(sys.executable)
WORK = os.path.join(ROOT, '.double')
INFO = os.path.join(WORK, 'demo-info.json')
DB = os.path.join(WORK, 'demo.db')
TF_VARS = os.path.join('.double', 'datastores.auto.tfvars.json')
TYPO = os.path.join('.double', 'roles-typo.yml')


def banner(text):
    print('\n\033[1m== %s\033[0m' % text, flush=True)


def run(args, expect_fail=False, show=True):
    print('$ %s' % ' '.join(args), flush=True)
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)
    out = (proc.stdout + proc.stderr).strip()
    if show and out:
        print(out)
    if (proc.returncode != 0) != expect_fail:
        print('demo: unexpected exit %d from %s' % (proc.returncode, args[0]), file=sys.stderr)
        if not show:
            print(out, file=sys.stderr)
        sys.exit(1)
    return proc.stdout


def start_double():
    os.makedirs(WORK, exist_ok=True)
    if os.path.exists(INFO):
        os.remove(INFO)
    proc = subprocess.Popen([sys.executable, '-m', 'tests.pve_double', '--scenario',
                             'tests/pve_double/scenarios/sample.yml', '--info-file', INFO],
                            cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.time() + 30
    while not os.path.exists(INFO):
        if proc.poll() is not None or time.time() > deadline:
            sys.exit('demo: the Proxmox API double did not start')
        time.sleep(0.1)
    with open(INFO) as handle:
        return proc, json.load(handle)


def plain(value):
    """ansible-inventory marks plugin values untrusted: {"__ansible_unsafe": "x"}."""
    if isinstance(value, dict) and '__ansible_unsafe' in value:
        return value['__ansible_unsafe']
    return value


def show_db():
    conn = sqlite3.connect(DB)
    for name, vmid, node, ip, role in conn.execute(
            'SELECT name, vmid, node, ip_address, role FROM servers ORDER BY name'):
        print('  %-10s vmid=%-5s node=%-5s ip=%-11s role=%s' % (name, vmid, node, ip, role))
    conn.close()


def table(inventory_json):
    data = json.loads(inventory_json)
    hostvars = data['_meta']['hostvars']
    rows = [('HOST', 'VMID', 'NODE', 'TYPE', 'STATUS', 'SOURCE', 'ANSIBLE_HOST', 'ROLE')]
    for host in sorted(hostvars):
        v = dict((k, plain(val)) for k, val in hostvars[host].items())
        rows.append((host, v.get('pve_vmid'), v.get('pve_node'), v.get('pve_type'), v.get('pve_status'),
                     v.get('pve_source'), v.get('ansible_host'), v.get('pve_role')))
    widths = [max(len(str(r[i] if r[i] is not None else '-')) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print('  '.join(str(c if c is not None else '-').ljust(w) for c, w in zip(row, widths)))


def recap(out):
    """The PLAY RECAP line of an ansible-playbook run."""
    return next((line.strip() for line in out.splitlines() if line.startswith('localhost ')), '(no recap)')


def role_groups(graph):
    """The role_* groups of `ansible-inventory --graph`."""
    keep, out = False, ['@all:']
    for line in graph.splitlines():
        if line.startswith('  |--@'):
            keep = line.startswith('  |--@role_')
        if keep:
            out.append(line)
    return '\n'.join(out)


def typo_copy():
    """state/roles.yml with AI-agent misspelt, under .double/."""
    with open(os.path.join(ROOT, 'state', 'roles.yml')) as handle:
        text = handle.read()
    with open(os.path.join(ROOT, TYPO), 'w') as handle:
        handle.write(text.replace('  AI-agent:', '  AI-agnet:', 1))


def main():
    banner('Starting the Proxmox API double (HTTPS on 127.0.0.1, sample cluster)')
    proc, info = start_double()
    print('double at %s, CA %s' % (info['url'], os.path.relpath(info['ca_path'], ROOT)))
    os.environ.update(
        PROXMOX_HOST=info['host'], PROXMOX_PORT=str(info['port']), PROXMOX_USER=info['token_id'].split('!')[0],
        PROXMOX_TOKEN_ID=info['token_id'], PROXMOX_TOKEN_SECRET=info['token_secret'],
        PROXMOX_CA_PATH=info['ca_path'], PROXMOX_MANAGER_DB=DB, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
        ANSIBLE_NOCOLOR='1')
    inventory, playbook = os.path.join(BIN, 'ansible-inventory'), os.path.join(BIN, 'ansible-playbook')
    to_double = ['-e', 'terraform_vars_file=%s' % TF_VARS]
    try:
        banner("The seeds' state DB: the original app's schema, holding only test and test-2")
        legacy_db(DB)
        if os.path.exists(os.path.join(ROOT, TF_VARS)):
            os.remove(os.path.join(ROOT, TF_VARS))  # the plan starts from the defaults of a fresh DB
        print('servers in the DB: test, test-2 (AI-agent is in Proxmox and tfvars, not in the DB)')

        banner('The merged view: live Proxmox guests + terraform/terraform.tfvars.json')
        table(run([inventory, '-i', 'inventory/proxmox.yml', '--list'], show=False))

        banner('The declarations in git: state/roles.yml and state/datastores.yml')
        for name in ('roles.yml', 'datastores.yml'):
            with open(os.path.join(ROOT, 'state', name)) as handle:
                print('--- state/%s' % name)
                print(''.join(line for line in handle if not line.startswith('#')).strip())

        banner('Validate: schema, then every server, role and datastore checked against the same view')
        run([playbook, 'playbooks/validate.yml'])

        banner('A typo is refused with the file, the line and a "did you mean", before anything is written')
        typo_copy()
        run([playbook, 'playbooks/validate.yml', '-e', 'roles_file=%s' % TYPO], expect_fail=True)

        banner('Plan: ansible-playbook playbooks/apply.yml --check --diff (nothing is written)')
        run([playbook, 'playbooks/apply.yml', '--check', '--diff'] + to_double)

        banner('Apply: the state DB is backed up, upgraded in place, and gets every role in one transaction')
        run([playbook, 'playbooks/apply.yml'] + to_double)
        print('state DB now (AI-agent has its row and role; test and test-2 are kept):')
        show_db()

        banner('Apply again: nothing changes')
        print(recap(run([playbook, 'playbooks/apply.yml'] + to_double, show=False)))

        banner('Drift: git vs the state DB vs live Proxmox (web-02 is declared, not created yet)')
        run([playbook, 'playbooks/drift.yml'])

        banner('The inventory, grouped by role: AI-agent is in role_web')
        graph = run([inventory, '-i', 'inventory/proxmox.yml', '--graph'], show=False)
        print(role_groups(graph))
        print('(the full graph also groups by node, status, type, pool, tag and source)')
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        banner('Stopped the double. Scratch files: %s, %s' % (os.path.relpath(DB, ROOT), TF_VARS))


if __name__ == '__main__':
    main()

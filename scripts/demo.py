"""`make demo`: the whole GitOps story, end to end, against the bundled Proxmox API double.

Starts the double with the sample cluster, points the PROXMOX_* variables at
it, and runs what a user runs from the repo root: the inventory, then the
declarations in state/ validated, planned (check mode + diff), applied, applied
again (nothing changes), the drift table, and the inventory grouped by role.
The seeds' case: AI-agent is live and declared, but the old state DB only
knows `test` and `test-2`. Everything it writes stays under .double/: a
scratch state DB (never the repo's state/*.db) and the Terraform vars file
(never the committed terraform/datastores.auto.tfvars.json).

Then two clusters in one config repo (docs/clusters.md): a second double, `lab`,
whose web-01 shares the name and the vmid of the sample's; the secrets come from
PROXMOX_<NAME>_* variables only. The lab double is stopped halfway: the inventory
serves lab from its recorded view while demo stays live, and apply refuses to run.
"""

import json
import os
import shutil
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


def run(args, expect_fail=False, show=True, cwd=ROOT):
    print('$ %s' % ' '.join(os.path.basename(a) if a.startswith(BIN) else a for a in args), flush=True)
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    out = (proc.stdout + proc.stderr).strip()
    if show and out:
        print(out)
    elif proc.stderr.strip():
        print(proc.stderr.strip())  # the warnings of a run whose output is shown as a table
    if (proc.returncode != 0) != expect_fail:
        print('demo: unexpected exit %d from %s' % (proc.returncode, args[0]), file=sys.stderr)
        if not show:
            print(out, file=sys.stderr)
        sys.exit(1)
    return proc.stdout


def start_double(scenario='sample', info=INFO, cert_dir=None):
    """The double of a scenario; `cert_dir` keeps its CA after it stops, as a real cluster's CA file stays."""
    os.makedirs(WORK, exist_ok=True)
    if os.path.exists(info):
        os.remove(info)
    proc = subprocess.Popen([sys.executable, '-m', 'tests.pve_double', '--scenario',
                             'tests/pve_double/scenarios/%s.yml' % scenario, '--info-file', info]
                            + (['--cert-dir', cert_dir] if cert_dir else []),
                            cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.time() + 30
    while not os.path.exists(info):
        if proc.poll() is not None or time.time() > deadline:
            sys.exit('demo: the Proxmox API double did not start')
        time.sleep(0.1)
    with open(info) as handle:
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


def table_of(inventory_json, columns):
    """The hosts of `ansible-inventory --list` as rows of the given hostvars."""
    hostvars = json.loads(inventory_json)['_meta']['hostvars']
    rows = [('HOST',) + tuple(c.upper() for c in columns)]
    rows += [(host,) + tuple(plain(hostvars[host].get(c)) for c in columns) for host in sorted(hostvars)]
    widths = [max(len(str(r[i] if r[i] is not None else '-')) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print('  '.join(str(c if c is not None else '-').ljust(w) for c, w in zip(row, widths)))


# The second config repo: two clusters, declared once in its inventory file; no secret in any file.
CLUSTERS_REPO = os.path.join(WORK, 'clusters')
CLUSTERS_FILES = {
    'ansible.cfg': """[defaults]
inventory = inventory/proxmox.yml
collections_path = %s
interpreter_python = auto_silent

[inventory]
enable_plugins = proxmox_manager.core.proxmox, ansible.builtin.host_list
unparsed_is_failed = true
""" % os.path.join(ROOT, 'collections'),
    'state/roles.yml': """servers:
  AI-agent:
    role: web
  # web-01 is in both clusters: say which, by its host name or with cluster:
  web-01.demo:
    role: web
  web-01:
    role: java
    cluster: lab
  lab-ci:
    role: java
""",
    'state/datastores.yml': """default_hdd: local-lvm
default_ssd: ssd-pool
clusters:
  lab:
    default_ssd: lab-ssd
""",
}


def clusters_repo(demo, lab):
    """Write the two-cluster config repo; the environment holds each cluster's user, token and secret."""
    if os.path.exists(CLUSTERS_REPO):
        shutil.rmtree(CLUSTERS_REPO)
    for name, text in CLUSTERS_FILES.items():
        os.makedirs(os.path.dirname(os.path.join(CLUSTERS_REPO, name)), exist_ok=True)
        with open(os.path.join(CLUSTERS_REPO, name), 'w') as handle:
            handle.write(text)
    entries = []
    for name, info, tfvars in (('demo', demo, 'terraform/terraform.tfvars.json'),
                               ('lab', lab, 'tests/pve_double/scenarios/lab.tfvars.json')):
        # Each cluster's tfvars at its default place, terraform/<name>/, where its datastore defaults land too.
        os.makedirs(os.path.join(CLUSTERS_REPO, 'terraform', name))
        shutil.copy(os.path.join(ROOT, tfvars), os.path.join(CLUSTERS_REPO, 'terraform', name, 'terraform.tfvars.json'))
        entries.append('  %s:\n    api_host: %s\n    api_port: %s\n    ca_path: %s\n'
                       % (name, info['host'], info['port'], info['ca_path']))
    os.makedirs(os.path.join(CLUSTERS_REPO, 'inventory'))
    with open(os.path.join(CLUSTERS_REPO, 'inventory', 'proxmox.yml'), 'w') as handle:
        handle.write('plugin: proxmox_manager.core.proxmox\nclusters:\n' + ''.join(entries))
    env = dict((key, value) for key, value in os.environ.items() if not key.startswith('PROXMOX_'))
    for name, info in (('DEMO', demo), ('LAB', lab)):
        env.update({'PROXMOX_%s_USER' % name: info['token_id'].split('!')[0],
                    'PROXMOX_%s_TOKEN_ID' % name: info['token_id'],
                    'PROXMOX_%s_TOKEN_SECRET' % name: info['token_secret']})
    env.update(ANSIBLE_CONFIG=os.path.join(CLUSTERS_REPO, 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    return env


def run_in(env, args, expect_fail=False, show=True):
    """run() in the two-cluster config repo, with its environment."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        return run(args, expect_fail=expect_fail, show=show, cwd=CLUSTERS_REPO)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def two_clusters(inventory, playbook):
    banner('Two clusters in one config repo: a second double, lab; web-01 (vmid 101) is in both')
    demo_proc, demo = start_double('sample', os.path.join(WORK, 'demo-cluster.json'),
                                   os.path.join(WORK, 'demo-cluster-ca'))
    lab_proc, lab = start_double('lab', os.path.join(WORK, 'lab-cluster.json'), os.path.join(WORK, 'lab-cluster-ca'))
    try:
        env = clusters_repo(demo, lab)
        with open(os.path.join(CLUSTERS_REPO, 'inventory', 'proxmox.yml')) as handle:
            print('--- inventory/proxmox.yml (the secrets are PROXMOX_DEMO_* and PROXMOX_LAB_* variables)')
            print(handle.read().strip())
        print('--- state/roles.yml')
        print(CLUSTERS_FILES['state/roles.yml'].strip())

        banner('Validate and apply: every cluster in one run, each written in its own call')
        run_in(env, [playbook, 'proxmox_manager.core.validate'])
        run_in(env, [playbook, 'proxmox_manager.core.apply'])
        banner('Drift, with a CLUSTER column')
        run_in(env, [playbook, 'proxmox_manager.core.drift'])

        banner('The inventory of both clusters: pve_cluster, cluster_<name> groups, web-01.demo and web-01.lab')
        out = run_in(env, [inventory, '--list'], show=False)
        table_of(out, ('pve_cluster', 'pve_vmid', 'pve_source', 'pve_role'))

        banner('The lab cluster goes down halfway')
        lab_proc.terminate()
        lab_proc.wait(timeout=10)
        out = run_in(env, [inventory, '--list'], show=False)
        table_of(out, ('pve_cluster', 'pve_vmid', 'pve_source', 'pve_role'))
        banner('Apply refuses: it cannot validate against a cluster it cannot see, and writes nothing')
        run_in(env, [playbook, 'proxmox_manager.core.apply'], expect_fail=True)
    finally:
        for proc in (demo_proc, lab_proc):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)


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
    two_clusters(inventory, playbook)
    banner('Stopped both doubles. Scratch config repo: %s' % os.path.relpath(CLUSTERS_REPO, ROOT))


if __name__ == '__main__':
    main()

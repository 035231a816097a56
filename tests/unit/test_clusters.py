"""Several clusters (issue 17), as pure functions: the `clusters` mapping, what each module gets from it,
and the merged view of several clusters."""

import pytest

from ansible_collections.proxmox_manager.core.plugins.module_utils import clusters
from ansible_collections.proxmox_manager.core.plugins.module_utils import merged_view as mv
from ansible_collections.proxmox_manager.core.plugins.module_utils.errors import ConfigurationError
from ansible_collections.proxmox_manager.core.plugins.plugin_utils import module_action
from tests.unit.test_merged_view import declared, guest

MAPPING = {'prod': {'api_host': 'pve-prod', 'tfvars_path': 'terraform/prod.json'},
           'lab-2': {'api_host': 'pve-lab', 'api_port': 8007}}
TOP = {'api_user': 'automation@pve', 'api_token_id': 'ansible', 'api_token_secret': 'shared', 'api_timeout': 9}


def test_each_option_comes_from_the_entry_then_its_variables_then_the_top_level():
    environ = {'PROXMOX_LAB_2_TOKEN_SECRET': 'lab-secret', 'PROXMOX_LAB_2_VALIDATE_CERTS': 'no',
               'PROXMOX_PROD_HOST': 'not-this', 'PROXMOX_LAB_2_PORT': '1'}
    prod, lab = clusters.every(MAPPING, TOP, environ)
    assert prod == dict(cluster='prod', api_host='pve-prod', api_port=None, api_user='automation@pve',
                        api_token_id='ansible', api_token_secret='shared', api_password=None, validate_certs=None,
                        ca_path=None, tfvars_path='terraform/prod.json', api_timeout=9)
    assert lab['api_token_secret'] == 'lab-secret' and lab['validate_certs'] is False
    assert lab['api_port'] == 8007  # the entry beats the variable
    assert lab['tfvars_path'] == 'terraform/lab-2/terraform.tfvars.json'
    assert clusters.pick(MAPPING, 'lab-2', TOP, environ) == lab


@pytest.mark.parametrize('mapping, says', [
    ([], 'clusters must map each cluster\'s name to its options'),
    ({'1st': {}}, "the name '1st' is not 1 to 63 letters"),
    ({'a-b': {}, 'A_B': {}}, "'a-b' and 'A_B' would share the variables PROXMOX_A_B_*"),
    ({'prod': {'api_hots': 'x'}}, "clusters.prod: unknown option 'api_hots'"),
    ({'prod': 'pve-prod'}, 'clusters.prod: must be a mapping of options.'),
    ({'prod': {'api_port': 'x'}, 'lab': {}}, None),  # a bad port is the client's to say, named
])
def test_a_malformed_mapping_is_one_clear_error(mapping, says):
    if says is None:
        assert clusters.check(mapping) == ['prod', 'lab']
        return
    with pytest.raises(ConfigurationError, match=None) as err:
        clusters.check(mapping)
    assert says in str(err.value), str(err.value)


def test_two_clusters_reading_one_tfvars_file_are_refused():
    mapping = {'a': {'tfvars_path': 'tf.json'}, 'b': {'tfvars_path': './tf.json'}}
    with pytest.raises(ConfigurationError, match="The clusters a and b read the same tfvars file tf.json"):
        clusters.every(mapping, {}, {}, resolve=lambda path: path.lstrip('./'))


def test_a_bad_value_in_a_cluster_variable_names_it():
    with pytest.raises(ConfigurationError, match="validate_certs must be true or false, not 'perhaps'"):
        clusters.options('prod', {}, {}, {'PROXMOX_PROD_VALIDATE_CERTS': 'perhaps'})
    with pytest.raises(ConfigurationError, match="api_port is not a port number: 'x'"):
        clusters.options('prod', {}, {}, {'PROXMOX_PROD_PORT': 'x'})


def test_an_unknown_cluster_is_named_with_the_known_ones():
    with pytest.raises(ConfigurationError, match="The cluster 'dev' is not declared; the clusters are prod, lab-2."):
        clusters.pick(MAPPING, 'dev', TOP, {})


# -- what the action hands each module ------------------------------------------------------------------


def test_a_one_cluster_module_gets_the_named_clusters_connection_and_the_tasks_own_options_win(tmp_path):
    inventory = dict(TOP, clusters=MAPPING)
    args = module_action.module_args({'cluster': 'prod', 'api_user': 'me@pve'}, None, environ={}, inventory=inventory)
    assert args['api_host'] == 'pve-prod' and args['tfvars_path'] == 'terraform/prod.json'
    assert args['api_user'] == 'me@pve' and args['api_token_secret'] == 'shared' and args['cluster'] == 'prod'
    # PROXMOX_CLUSTER names it too
    args = module_action.module_args({}, None, environ={'PROXMOX_CLUSTER': 'lab-2'}, inventory=inventory)
    assert args['api_host'] == 'pve-lab'


def test_a_one_cluster_module_must_name_its_cluster_when_the_file_declares_several():
    with pytest.raises(ConfigurationError, match='declares the clusters prod, lab-2: name the one this task acts on'):
        module_action.module_args({}, None, environ={}, inventory={'clusters': MAPPING})


def test_a_module_covering_every_cluster_gets_them_all(tmp_path):
    args = module_action.module_args({}, str(tmp_path / 'ansible.cfg'), environ={}, inventory=dict(TOP, clusters=MAPPING),
                                     all_clusters=True)
    assert [(c['cluster'], c['api_host']) for c in args['clusters']] == [('prod', 'pve-prod'), ('lab-2', 'pve-lab')]
    assert 'api_host' not in args


def test_without_a_mapping_the_files_cluster_name_is_the_modules():
    assert module_action.module_args({}, None, environ={}, inventory={'cluster': 'site-a'})['cluster'] == 'site-a'
    assert module_action.module_args({'cluster': 'mine'}, None, environ={},
                                     inventory={'cluster': 'site-a'})['cluster'] == 'mine'
    assert 'cluster' not in module_action.module_args({}, None, environ={}, inventory=None)


# -- the merged view of several clusters ----------------------------------------------------------------


def _views():
    prod = mv.build_view([guest(101, 'web-01'), guest(102, 'db-01'), guest(110, 'worker'), guest(111, 'worker')],
                         {'web-01': declared('web-01', '10.0.0.1')}, cluster='prod')
    lab = mv.build_view([guest(101, 'web-01'), guest(300, 'lab-ci'), guest(120, 'worker')],
                        {'planned': declared('planned')}, cluster='lab')
    return mv.combine([prod, lab])


def test_a_name_in_two_clusters_is_one_host_per_cluster_with_a_warning():
    view = _views()
    assert sorted(view.by_host) == ['db-01', 'lab-ci', 'planned', 'web-01.lab', 'web-01.prod', 'worker-110.prod',
                                    'worker-111.prod', 'worker.lab']
    assert view.by_host['web-01.lab'].cluster == 'lab' and view.by_host['web-01.prod'].ansible_host == '10.0.0.1'
    assert view.clusters == ['prod', 'lab']
    assert ("The name 'web-01' is used in the clusters lab, prod: it is listed as web-01.lab, web-01.prod."
            in view.warnings)
    assert any(w.startswith("Cluster prod: 2 guests share the name 'worker'") for w in view.warnings)


def test_find_takes_the_cluster_and_refuses_an_ambiguous_name():
    view = _views()
    record, problem = view.find('web-01')
    assert record is None and problem == (
        "Server name 'web-01' is used in the clusters lab, prod: name its cluster (cluster: lab), or use one of the "
        "host names web-01.lab, web-01.prod.")
    assert view.find('web-01', cluster='lab')[0].host == 'web-01.lab'
    assert view.find('web-01', vmid=101, cluster='prod')[0].host == 'web-01.prod'
    assert view.find('web-01.prod')[0].cluster == 'prod'
    assert view.find('lab-ci')[0].cluster == 'lab'  # one cluster has it: no need to say which
    assert view.find('lab-ci', cluster='prod') == (None, "Server 'lab-ci' is not in the cluster prod; it is in lab.")
    assert view.find('db-01', cluster='dev') == (None, "The cluster 'dev' is not one of the clusters (prod, lab).")
    assert view.find('worker', cluster='lab')[0].vmid == 120
    with pytest.raises(Exception, match="Server name 'worker' is used in the clusters lab, prod"):
        view.resolve('worker')

"""Suite-wide fixtures."""
import pytest
from mmengine.registry import DefaultScope


@pytest.fixture(autouse=True)
def mmpretrain_default_scope():
    """Run every test under mmpretrain's default scope and restore the scopes afterwards, so a
    test that sets another one (a runner of an mmseg config sets 'mmseg') cannot change where
    the following tests look up their modules."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield

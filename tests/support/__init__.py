"""What tests in several folders share: model builders, the numpy references, fixtures, a fake model hub."""

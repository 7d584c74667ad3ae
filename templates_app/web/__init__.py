"""The marketer's pages: home, template gallery and form, runs, images, brand kits."""

"""Zero-shot classification and image-text retrieval of contrastive models (`workbench evaluate`)."""

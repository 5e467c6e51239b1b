"""Zero-shot classification and image-text retrieval of contrastive models on evaluation tasks (`workbench evaluate`)."""

"""Biomedical-sounding words and sentences for generated articles, and captions that say what a figure shows."""

from __future__ import annotations

import random

from workbench.mirror.charts import ChartLabels

DISEASES = (
    "breast cancer", "non-small cell lung cancer", "type 2 diabetes", "hypertension", "rheumatoid arthritis",
    "hepatocellular carcinoma", "Alzheimer's disease", "chronic kidney disease", "COVID-19", "colorectal cancer",
    "multiple sclerosis", "heart failure", "osteoarthritis", "glioblastoma", "sepsis", "asthma", "tuberculosis",
    "Parkinson's disease", "prostate cancer", "atrial fibrillation",
)  # fmt: skip
ORGANS = ("liver", "lung", "kidney", "brain", "heart", "breast", "colon", "pancreas", "retina", "bone", "skin")
METHODS = (
    "RNA sequencing", "flow cytometry", "immunohistochemistry", "magnetic resonance imaging", "computed tomography",
    "western blotting", "quantitative PCR", "a randomized controlled trial", "a retrospective cohort study",
    "machine learning", "ultrasonography", "mass spectrometry", "single-cell transcriptomics", "mouse models",
)  # fmt: skip
STUDY_TYPES = (
    "a retrospective cohort study", "a prospective multicentre study", "a randomized controlled trial",
    "a cross-sectional analysis", "an experimental study", "a case series", "a pilot study",
)  # fmt: skip
GENES = ("TP53", "EGFR", "KRAS", "BRCA1", "PD-L1", "HER2", "VEGFA", "IL6", "TNF", "MYC", "APOE", "STAT3", "PTEN")
MEASURES = (
    ("serum IL-6", "pg/mL"), ("tumour volume", "mm3"), ("body weight", "g"), ("HbA1c", "%"),
    ("systolic blood pressure", "mmHg"), ("relative mRNA expression", "fold"), ("cell viability", "%"),
    ("CD4+ T cell count", "cells/uL"), ("LDL cholesterol", "mg/dL"), ("eGFR", "mL/min"), ("serum creatinine", "mg/dL"),
    ("infarct size", "%"), ("Ki-67 index", "%"), ("plasma glucose", "mmol/L"), ("apoptosis rate", "%"),
    ("ejection fraction", "%"), ("pain score", "VAS"), ("length of stay", "days"),
)  # fmt: skip
SURVIVAL_MEASURES = ("overall survival", "progression-free survival", "disease-free survival", "event-free survival")
GROUP_SETS = (
    ("Control", "Treated"), ("Placebo", "Low dose", "High dose"), ("WT", "KO"), ("Stage I", "Stage II", "Stage III"),
    ("Male", "Female"), ("Responders", "Non-responders"), ("Day 0", "Day 7", "Day 14", "Day 28"),
    ("Sham", "Model", "Model + drug"), ("Vehicle", "Drug A", "Drug B", "Drug A+B"), ("Low risk", "High risk"),
)  # fmt: skip
PIE_GROUPS = (
    ("Adenocarcinoma", "Squamous", "Small cell", "Other"), ("Surgery", "Chemotherapy", "Radiotherapy", "Combined"),
    ("Grade 1", "Grade 2", "Grade 3"), ("Primary care", "Hospital", "Emergency", "Home"),
    ("Never smoker", "Former smoker", "Current smoker"),
)  # fmt: skip
X_LABELS = ("Time (days)", "Age (years)", "Weeks after treatment", "Dose (mg/kg)", "Samples", "Group", "Hours")
SURNAMES = (
    "Smith", "Wang", "Garcia", "Müller", "Kim", "Rossi", "Nguyen", "Kowalski", "Silva", "Tanaka", "Cohen", "Patel",
    "Johansson", "Dubois", "Okafor", "Ivanova", "Chen", "Hernández", "Li", "Brown", "Yilmaz", "Andersen",
)  # fmt: skip
INITIALS = ("A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S", "T", "Y", "JM", "AK")
REF_JOURNALS = ("Lancet", "N Engl J Med", "Nature", "Cell", "JAMA", "BMJ", "Radiology", "Cancer Res", "Blood", "Gut")
STATS_SENTENCES = (
    "Data are presented as mean ± SD (n = {n}).",
    "Error bars indicate the standard error of the mean.",
    "*P < 0.05, **P < 0.01 versus control.",
    "Statistical significance was assessed with a two-tailed t-test.",
    "Results are representative of {k} independent experiments.",
    "The dashed line marks the reference value.",
    "Groups were compared with one-way ANOVA.",
)

CHART_NAMES: dict[str, tuple[str, ...]] = {
    "bar_chart": ("Bar chart", "Bar graph", "Bar plot"),
    "line_chart": ("Line chart", "Line graph", "Line plot"),
    "scatter_plot": ("Scatter plot", "Scatterplot", "Scatter diagram"),
    "heatmap": ("Heatmap", "Heat map", "Clustered heatmap"),
    "box_plot": ("Box plot", "Box-and-whisker plot", "Boxplot"),
    "pie_chart": ("Pie chart", "Pie graph"),
    "histogram": ("Histogram", "Frequency histogram"),
    "survival_curve": ("Kaplan-Meier survival curves", "Kaplan-Meier curve", "Survival curves"),
}
CHART_TEMPLATES: dict[str, tuple[str, ...]] = {
    "bar_chart": ("{name} of {measure} across {groups}", "{name} comparing mean {measure} between {groups}"),
    "line_chart": ("{name} of {measure} over time in {groups}", "{name} showing the time course of {measure}"),
    "scatter_plot": ("{name} of {measure} versus {x}", "{name} showing the correlation of {measure} with {x}"),
    "heatmap": ("{name} of {measure} across samples", "{name} of {measure} for {groups}"),
    "box_plot": ("{name} of {measure} in {groups}", "{name} showing the distribution of {measure} by group"),
    "pie_chart": ("{name} showing the proportion of {measure} categories", "{name} of {measure} by category"),
    "histogram": ("{name} of {measure}", "{name} showing the distribution of {measure} in the cohort"),
    "survival_curve": ("{name} of {measure} for {groups}", "{name} comparing {measure} between {groups}"),
}


def sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def join_names(names: tuple[str, ...] | list[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def chart_labels(rng: random.Random, concept: str) -> ChartLabels:
    if concept == "survival_curve":
        return ChartLabels(rng.choice(SURVIVAL_MEASURES), "probability", rng.choice(GROUP_SETS[:6]), "Time (months)")
    measure, unit = rng.choice(MEASURES)
    groups = rng.choice(PIE_GROUPS if concept == "pie_chart" else GROUP_SETS)
    return ChartLabels(measure, unit, groups, rng.choice(X_LABELS))


def chart_caption(rng: random.Random, concept: str, labels: ChartLabels, panels: int) -> tuple[str, str]:
    """(caption title, caption paragraph) for a chart; the title names the chart kind."""
    name = rng.choice(CHART_NAMES[concept])
    if panels > 1:
        name = f"{name}s" if not name.endswith("s") else name
    title = rng.choice(CHART_TEMPLATES[concept]).format(
        name=name, measure=labels.measure, groups=join_names(labels.groups).lower(), x=labels.x_label.lower()
    )
    body = [rng.choice(STATS_SENTENCES).format(n=rng.randint(3, 120), k=rng.randint(2, 5))]
    if panels > 1:
        body.insert(0, "(A) Discovery cohort. (B) Validation cohort.")
    return title + ".", " ".join(body)


def image_caption(rng: random.Random, description: str, findings: tuple[str, ...], panels: int) -> tuple[str, str]:
    """(caption title, caption paragraph) for a medical image; the title names the modality."""
    disease = rng.choice(DISEASES)
    title = rng.choice(
        (
            "{d}",
            "{d} of a patient with {disease}",
            "Representative {dl}",
            "{d} from the {disease} group",
        )
    ).format(d=description, dl=description[:1].lower() + description[1:], disease=disease)
    body = [rng.choice(findings)]
    if panels > 1:
        body.insert(0, "(A) Before and (B) after treatment.")
    if rng.random() < 0.5:
        body.append(rng.choice(("Arrows indicate the region of interest.", "Scale bar, 1 cm.", "Arrowheads mark it.")))
    return title + ".", " ".join(body)


def author_list(rng: random.Random, count: int) -> list[tuple[str, str]]:
    return [(rng.choice(SURNAMES), rng.choice(INITIALS)) for _ in range(count)]


def article_title(rng: random.Random, disease: str, gene: str, method: str) -> str:
    return rng.choice(
        (
            f"{sentence_case(method)} reveals the role of {gene} in {disease}",
            f"Imaging and molecular features of {disease}: {rng.choice(STUDY_TYPES)}",
            f"{gene} expression predicts outcome in {disease}",
            f"Association between {rng.choice(MEASURES)[0]} and {disease}: {rng.choice(STUDY_TYPES)}",
            f"Diagnostic performance of {method} in {disease}",
        )
    )


_SENTENCES = (
    lambda rng, disease: f"{sentence_case(disease)} remains a leading cause of morbidity worldwide.",
    lambda rng, disease: f"We used {rng.choice(METHODS)} to characterise {rng.choice(ORGANS)} involvement.",
    lambda rng, disease: f"Expression of {rng.choice(GENES)} was associated with {rng.choice(MEASURES)[0]}.",
    lambda rng, disease: f"A total of {rng.randint(20, 2000)} participants were included in the analysis.",
    lambda rng, disease: f"Previous studies reported conflicting results regarding {rng.choice(GENES)} signalling.",
    lambda rng, disease: f"Samples were processed within {rng.randint(1, 48)} h of collection.",
    lambda rng, disease: f"Median follow-up was {rng.randint(6, 120)} months.",
    lambda rng, disease: f"These findings support further evaluation of {rng.choice(METHODS)} in {disease}.",
    lambda rng, disease: "Statistical analyses were performed in R version 4.2.",
    lambda rng, disease: "The study was approved by the institutional review board; all participants gave consent.",
)


def paragraph(rng: random.Random, disease: str, sentences: int) -> str:
    chosen = rng.sample(_SENTENCES, min(sentences, len(_SENTENCES)))
    return " ".join(sentence(rng, disease) for sentence in chosen)


def reference_title(rng: random.Random) -> str:
    return f"{rng.choice(GENES)} and {rng.choice(MEASURES)[0]} in {rng.choice(DISEASES)}: {rng.choice(STUDY_TYPES)}"
